"""Every vLLM command the launcher and the chart generate is one the installed vLLM accepts.

Checked with vLLM's own parser and validation (tests/catalog/vllm_cli.py): the launcher goldens,
a sweep over every profile x precision x GPU x GPU count x engine option the planner fits, and
every engine the chart renders (each example values file, and each chart profile and variant).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.catalog.gpus import all_gpus
from serving.catalog.planner import plan
from serving.catalog.profiles import load_profiles
from serving.engine.launcher import build_gpu_command
from tests.catalog.vllm_cli import Rejected, check, checkpoint_quant_methods, server_args
from tests.helm.chartkit import CHART, Obj, Renderer, engine_workloads, example_files, pod_specs

GOLDEN = Path(__file__).parents[1] / "engine" / "golden"
QUANT = checkpoint_quant_methods()


def _model(argv: list[str]) -> str:
    args = server_args(argv)
    return args[args.index("--model") + 1]


def _accepted(argv: list[str]) -> None:
    model = _model(argv)
    check(argv, QUANT.get(model))
    if model in QUANT:
        # Every catalog checkpoint ships its chat template (Mistral's through mistral_common).
        assert "--chat-template" not in argv, f"{model}: the checkpoint has its own template"


@pytest.mark.parametrize("golden", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_every_launcher_golden_is_accepted(golden: str) -> None:
    argv = json.loads((GOLDEN / golden).read_text())["argv"]
    if "--model" not in argv:
        pytest.fail(f"{golden} has no --model")
    _accepted(argv)


ENGINE_OPTIONS: list[dict[str, Any]] = [
    {},
    {"objective": "latency"},
    {"objective": "throughput"},
    {"gpu_memory_utilization": 0.95, "enforce_eager": True},
    {"max_num_seqs": 64, "max_num_batched_tokens": 4096},
]


def _sweep() -> list[list[str]]:
    commands = []
    for profile in load_profiles().values():
        if profile.engine.runtime != "cuda":
            continue
        for precision in profile.weights:
            for gpu in all_gpus():
                for count, nodes in ((1, 1), (2, 1), (4, 1), (8, 1), (8, 2)):
                    for options in ENGINE_OPTIONS:
                        result = plan(profile, gpu, count, nodes, precision=precision, **options)
                        if result.fits:
                            spec = build_gpu_command(
                                profile, result, python="python", host="0.0.0.0", port=8000
                            )
                            commands.append(list(spec.argv))
    return commands


def test_every_command_the_planner_can_produce_is_accepted() -> None:
    commands = _sweep()
    distinct = {tuple(c) for c in commands}
    # Every GPU profile and precision fits somewhere, in several layouts.
    assert len(distinct) > 100
    for profile in load_profiles().values():
        if profile.engine.runtime == "cuda":
            for weights in profile.weights.values():
                assert any(weights.repo in c for c in distinct), weights.repo
    for argv in sorted(distinct):
        _accepted(list(argv))


def test_a_deprecated_method_without_its_flag_is_refused() -> None:
    argv = json.loads((GOLDEN / "llama-3.1-405b-fp8-tp8.json").read_text())["argv"]
    assert "--allow-deprecated-quantization" in argv
    check(argv, "fbgemm_fp8")
    without = [a for a in argv if a != "--allow-deprecated-quantization"]
    with pytest.raises(Rejected, match="deprecated"):
        check(without, "fbgemm_fp8")


def test_every_deprecated_method_of_this_vllm_needs_the_flag() -> None:
    from vllm.model_executor.layers.quantization import DEPRECATED_QUANTIZATION_METHODS

    assert DEPRECATED_QUANTIZATION_METHODS, "this vLLM deprecates nothing: revisit the profiles"
    for method in DEPRECATED_QUANTIZATION_METHODS:
        argv = ["--model", "some/checkpoint", "--quantization", method]
        with pytest.raises(Rejected, match="deprecated"):
            check(argv, method)
        check([*argv, "--allow-deprecated-quantization"], method)


def test_the_catalog_passes_the_flag_exactly_for_deprecated_checkpoints() -> None:
    from vllm.model_executor.layers.quantization import DEPRECATED_QUANTIZATION_METHODS

    for profile in load_profiles().values():
        for weights in profile.weights.values():
            method = weights.quant_method or weights.quantization
            deprecated = method in DEPRECATED_QUANTIZATION_METHODS
            assert weights.allow_deprecated_quantization == deprecated, (profile.name, method)


@pytest.mark.parametrize(
    ("argv", "checkpoint", "reason"),
    [
        (["--model", "m", "--quantization", "fp8"], None, "not quantized"),
        (["--model", "m", "--quantization", "no-such-method"], None, "not quantized"),
        (["--model", "m", "--quantization", "fp8_per_tensor"], "fbgemm_fp8", "does not match"),
        (["--model", "m", "--no-such-flag"], None, "unrecognized arguments"),
        (["--model", "m", "--tokenizer-mode", "sentencepiece"], None, "tokenizer-mode"),
        (["--model", "m", "--load-format", "pickle"], None, "load-format"),
        (["--model", "m", "--kv-cache-dtype", "int3"], None, "invalid choice"),
        (
            ["--model", "m", "--enable-auto-tool-choice", "--tool-call-parser", "llama4_jsonx"],
            None,
            "tool call parser",
        ),
        (["--model", "m", "--enable-auto-tool-choice"], None, "requires --tool-call-parser"),
        (
            ["--model", "m", "--chat-template", "/vllm-workspace/examples/missing.jinja"],
            None,
            "doesn't exist",
        ),
    ],
)
def test_the_check_refuses_what_vllm_refuses(
    argv: list[str], checkpoint: str | None, reason: str
) -> None:
    with pytest.raises(Rejected, match=reason):
        check(argv, checkpoint)


# The chart: every engine it renders, from the examples and from every profile and variant.


def _chart_server_args(workload: Obj) -> list[str]:
    for role, _, spec in pod_specs(workload):
        command: list[str] = spec["containers"][0]["command"]
        if role == "single" and "-c" not in command:
            return command
        if role in ("single", "leader"):
            script = command[-1]
            line = next(ln for ln in script.splitlines() if ln.lstrip().startswith("exec "))
            return shlex.split(line.lstrip()[len("exec ") :])
    raise AssertionError(f"no vLLM server in {workload['metadata']['name']}")


def _chart_profile_values() -> list[Obj]:
    profiles = yaml.safe_load((CHART / "files" / "profiles.yaml").read_text())
    found = []
    for name, body in profiles.items():
        base = name.replace(".", "-")
        found.append({"models": [{"name": base, "profile": name}]})
        for variant, changes in (body.get("variants") or {}).items():
            model = {"name": f"{base}-{variant}", "profile": name, "variant": variant}
            values: Obj = {"models": [model]}
            if int(changes.get("nodes", body.get("nodes", 1))) > 1:
                # Several pods share one weights copy (as the multi-node example sets it up).
                values["weightsCache"] = {"mode": "shared", "existingClaim": "weights-rwx"}
            found.append(values)
    return found


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _engine_commands(rendered: Any) -> list[list[str]]:
    return [_chart_server_args(w) for w in engine_workloads(rendered)]


@pytest.mark.parametrize("example", example_files())
def test_every_chart_example_engine_is_accepted(renderer: Renderer, example: str) -> None:
    for argv in _engine_commands(renderer.render(example)):
        _accepted(argv)


def test_every_chart_profile_and_variant_is_accepted(renderer: Renderer) -> None:
    cases = _chart_profile_values()
    assert cases
    seen = 0
    for values in cases:
        for argv in _engine_commands(renderer.render(values=values)):
            _accepted(argv)
            seen += 1
    assert seen >= len(cases)
