#!/usr/bin/env python3
"""Generate helm/serving/files/profiles.yaml from the catalog, the planner and the launcher.

The catalog (serving/catalog/profiles/*.yaml) is the one source of model data. For each layout in
helm/chart-layouts.yaml this script plans the profile with serving.catalog.planner.plan, builds
the launcher's vLLM command for that plan (serving.engine.launcher.build_gpu_command) and turns
that command back into chart fields. Flags the chart has a field for become fields (users override
them per model); every other flag lands in `engineArgs` as it is, so a flag the launcher starts to
pass reaches the chart with a regeneration and no change here. The GPU list of a profile is every
labelled GPU the planner gives the very same command for the layout.

Usage:
  python scripts/gen-chart-profiles.py           write helm/serving/files/profiles.yaml
  python scripts/gen-chart-profiles.py --check   exit 1 if the committed file differs
Run scripts/gen-values-schema.py afterwards: the values schema is typed from this file.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.catalog.errors import CatalogError  # noqa: E402
from serving.catalog.gpus import Gpu, match_gpu  # noqa: E402
from serving.catalog.planner import Plan, plan  # noqa: E402
from serving.catalog.profiles import Profile, load_profiles  # noqa: E402
from serving.engine.launcher import LaunchSpec, build_gpu_command  # noqa: E402

LAYOUTS = ROOT / "helm" / "chart-layouts.yaml"
OUTPUT = ROOT / "helm" / "serving" / "files" / "profiles.yaml"
GIB = 1 << 30
PROBE_PERIOD_S = 10

# Every field of a chart profile, in file order, with the text gen-values-schema.py uses to
# describe it and the default the chart assumes when a custom model leaves it out.
FIELDS: list[tuple[str, str, Any]] = [
    ("description", "what the profile (or variant) runs, and on which GPUs", ""),
    ("hfRepo", "Hugging Face repo id passed to `vllm serve` (--model)", ""),
    ("revision", "--revision: the commit to pin (main = not pinned yet)", ""),
    ("servedName", "--served-model-name, the name clients and the gateway use", ""),
    ("gated", "the repo needs an accepted licence: the hf-token Secret becomes mandatory", False),
    ("serverModule", "Python module that starts vLLM's OpenAI server", ""),
    ("tensorParallel", "--tensor-parallel-size (within one node: NVLink)", 1),
    ("pipelineParallel", "--pipeline-parallel-size (across nodes when nodes > 1)", 1),
    ("nodes", "pods per replica; > 1 renders a LeaderWorkerSet (Ray backend)", 1),
    ("gpusPerPod", "nvidia.com/gpu per pod; gpusPerPod x nodes = TP x PP x data-parallel", 1),
    ("gpuProducts", "nvidia.com/gpu.product values (GPU feature discovery) that fit", []),
    ("maxModelLen", "--max-model-len", 0),
    ("dtype", "--dtype", "auto"),
    ("quantization", '--quantization ("" = from the checkpoint)', ""),
    ("kvCacheDtype", "--kv-cache-dtype (fp8 doubles KV capacity on GPUs with FP8)", "auto"),
    ("gpuMemoryUtilization", "--gpu-memory-utilization", 0.9),
    ("maxNumSeqs", "--max-num-seqs (0 = vLLM's default)", 0),
    ("maxNumBatchedTokens", "--max-num-batched-tokens (0 = vLLM's default)", 0),
    ("enforceEager", "--enforce-eager: no CUDA graphs (faster start, slower decode)", False),
    ("toolCallParser", '--tool-call-parser with --enable-auto-tool-choice ("" = off)', ""),
    ("chatTemplate", '--chat-template: a file in the image or the template itself ("" = own)', ""),
    ("tokenizerMode", "--tokenizer-mode (auto, mistral, ...)", "auto"),
    ("configFormat", "--config-format (auto, hf, mistral)", "auto"),
    ("loadFormat", "--load-format (auto, safetensors, mistral, ...)", "auto"),
    ("engineArgs", "further vLLM arguments the launcher passes for this profile", []),
    ("env", "environment variables the launcher sets for this profile", {}),
    ("weightPatterns", "files the weights pre-fetch downloads (allow patterns)", []),
    ("cacheSize", "size of the per-model weights PVC", "50Gi"),
    ("resources", "CPU/memory per pod (GPUs are added from gpusPerPod)", {}),
    ("shmSize", "memory-backed /dev/shm size, mounted when a pod has more than one GPU", "8Gi"),
    ("startupProbe", "periodSeconds x failureThreshold = the budget (download + load)", {}),
    ("variants", "named overrides, chosen with `variant:`", {}),
]

# Launcher flags with a chart field: flag -> (field, type).
VALUE_FLAGS: dict[str, tuple[str, type]] = {
    "--model": ("hfRepo", str),
    "--revision": ("revision", str),
    "--served-model-name": ("servedName", str),
    "--tensor-parallel-size": ("tensorParallel", int),
    "--pipeline-parallel-size": ("pipelineParallel", int),
    "--max-model-len": ("maxModelLen", int),
    "--dtype": ("dtype", str),
    "--gpu-memory-utilization": ("gpuMemoryUtilization", float),
    "--quantization": ("quantization", str),
    "--kv-cache-dtype": ("kvCacheDtype", str),
    "--max-num-seqs": ("maxNumSeqs", int),
    "--max-num-batched-tokens": ("maxNumBatchedTokens", int),
    "--tool-call-parser": ("toolCallParser", str),
    "--chat-template": ("chatTemplate", str),
    "--tokenizer-mode": ("tokenizerMode", str),
    "--config-format": ("configFormat", str),
    "--load-format": ("loadFormat", str),
}
SWITCH_FLAGS = {"--enforce-eager": "enforceEager"}
# The chart renders these from its own layout (where it listens, replicas per pod, Ray).
CHART_OWNED = {"--host", "--port", "--data-parallel-size", "--distributed-executor-backend"}


class GenerateError(Exception):
    """The catalog and the layouts do not make a valid chart profile."""


def parse_flags(argv: list[str]) -> list[tuple[str, str | None]]:
    """(flag, value) pairs in order; value None for a switch."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise GenerateError(f"unexpected positional argument {arg!r} in the launcher command")
        if "=" in arg:
            flag, value = arg.split("=", 1)
            pairs.append((flag, value))
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            pairs.append((arg, argv[i + 1]))
            i += 2
        else:
            pairs.append((arg, None))
            i += 1
    return pairs


def engine_fields(spec: LaunchSpec, result: Plan, nodes: int) -> dict[str, Any]:
    """The launcher's command and environment, as chart fields."""
    _python, dash_m, module, *rest = spec.argv
    if dash_m != "-m":
        raise GenerateError(f"the launcher no longer starts vLLM as a module: {spec.argv[:3]}")
    fields: dict[str, Any] = {"serverModule": module}
    extra: list[str] = []
    pairs = parse_flags(rest)
    flags = {flag for flag, _ in pairs}
    for flag, value in pairs:
        if flag in VALUE_FLAGS and value is not None:
            field, kind = VALUE_FLAGS[flag]
            fields[field] = kind(value)
        elif flag in SWITCH_FLAGS and value is None:
            fields[SWITCH_FLAGS[flag]] = True
        elif flag == "--enable-auto-tool-choice" and "--tool-call-parser" in flags:
            continue  # the chart adds it with toolCallParser
        elif flag in CHART_OWNED:
            continue
        else:
            extra += [flag] if value is None else [flag, value]
    ray = "--distributed-executor-backend" in flags
    if ray != (nodes > 1):
        raise GenerateError(
            f"the launcher {'uses' if ray else 'does not use'} Ray for a {nodes}-node layout; "
            "the chart uses Ray exactly for multi-node engines"
        )
    fields["engineArgs"] = extra
    # The chart decides HF_HUB_OFFLINE itself: it depends on how the weights are fetched.
    fields["env"] = {k: v for k, v in spec.env.items() if k != "HF_HUB_OFFLINE"}
    return fields


def gpu_for_label(label: str) -> Gpu | None:
    """The catalog GPU for a GPU feature discovery label (the nvidia-smi name, dashed)."""
    return match_gpu(label) or match_gpu(label.replace("-", " "))


def launch(profile: Profile, plan_args: dict[str, Any]) -> tuple[Plan, LaunchSpec] | None:
    try:
        result = plan(profile, **plan_args)
    except CatalogError:
        return None
    if not result.fits:
        return None
    spec = build_gpu_command(profile, result, python="python3", host="0.0.0.0", port=8000)
    return result, spec


def _without_layout(argv: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The command's flags except tensor and data parallelism."""
    ignored = {"--tensor-parallel-size", "--data-parallel-size"}
    return [pair for pair in parse_flags(list(argv[3:])) if pair[0] not in ignored]


def gpu_products(
    profile: Profile,
    plan_args: dict[str, Any],
    reference: tuple[Plan, LaunchSpec],
    labels: list[str],
) -> list[str]:
    """Labels of the GPUs the reference command suits: the planner, given the same GPU count,
    precision and context there, gives the same command, at most with a smaller tensor-parallel
    size (so the reference's larger one holds the weights and full context too)."""
    ref_plan, ref_spec = reference
    found = []
    for label in labels:
        gpu = gpu_for_label(label)
        if gpu is None:
            continue
        planned = launch(profile, {**plan_args, "gpu": gpu.id})
        if planned is None:
            continue
        result, spec = planned
        # The catalog entry stands for NVLink parts; the PCIe card of the same chip has none.
        over_pcie = "pcie" in label.lower() and gpu.interconnect == "nvlink"
        if over_pcie and ref_plan.gpus_per_replica > 1:
            continue
        same = _without_layout(spec.argv) == _without_layout(ref_spec.argv)
        if same and dict(spec.env) == dict(ref_spec.env) and _smaller_or_same(result, ref_plan):
            found.append(label)
    return found


def _smaller_or_same(result: Plan, reference: Plan) -> bool:
    return (
        result.pipeline_parallel == reference.pipeline_parallel
        and result.tensor_parallel <= reference.tensor_parallel
        and reference.tensor_parallel % result.tensor_parallel == 0
    )


def _describe(profile: Profile, result: Plan, gpus: list[str]) -> str:
    weights = result.precision.upper()
    if result.quantization:
        weights += f" (quantized online: {result.quantization})"
    kv = ", FP8 KV cache" if result.kv_cache_dtype == "fp8" else ""
    layout = f"TP {result.tensor_parallel}"
    if result.pipeline_parallel > 1:
        layout += f" x PP {result.pipeline_parallel}"
    where = f"{result.count} GPU{'s' if result.count > 1 else ''}"
    if result.nodes > 1:
        where = f"{result.nodes} nodes x {result.count} GPUs (LeaderWorkerSet + Ray)"
    names = ", ".join(label.removeprefix("NVIDIA-") for label in gpus)
    return f"{profile.display_name}, {weights}{kv}, {layout} on {where}: {names}"


def chart_profile(
    profile: Profile, layout: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    plan_args = dict(layout["plan"])
    planned = launch(profile, plan_args)
    if planned is None:
        raise GenerateError(f"{profile.name}: the layout {plan_args} does not fit the planner")
    result, spec = planned
    nodes = int(plan_args.get("nodes", 1))
    gpus = gpu_products(profile, plan_args, planned, settings["gpuProducts"])
    checkpoint = result.memory_per_gpu.weights_gib * GIB * result.gpus_per_replica
    download_s = checkpoint / (float(settings["downloadMBps"]) * 1e6)
    cache_gib = math.ceil(checkpoint / GIB * float(settings["cacheHeadroom"]) / 10) * 10
    budget_s = spec.startup_budget_s + download_s
    fields: dict[str, Any] = {name: default for name, _, default in FIELDS}
    fields.update(
        description=_describe(profile, result, gpus),
        gated=profile.gated,
        nodes=nodes,
        gpusPerPod=result.count,
        gpuProducts=gpus,
        weightPatterns=list(profile.weights_for(result.precision).patterns),
        cacheSize=f"{cache_gib}Gi",
        resources=layout.get("resources", {}),
        shmSize=layout.get("shmSize", "8Gi"),
        startupProbe={
            "periodSeconds": PROBE_PERIOD_S,
            "failureThreshold": math.ceil(budget_s / PROBE_PERIOD_S),
        },
    )
    fields.update(engine_fields(spec, result, nodes))
    fields.pop("variants")
    return fields


def generate(settings: dict[str, Any], profiles: dict[str, Profile]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, layout in settings["profiles"].items():
        if name not in profiles:
            raise GenerateError(f"chart-layouts.yaml names {name!r}, which the catalog lacks")
        profile = profiles[name]
        base = chart_profile(profile, layout, settings)
        variants = {}
        for variant, overrides in (layout.get("variants") or {}).items():
            merged = {**layout, **overrides}
            full = chart_profile(profile, merged, settings)
            variants[variant] = {k: v for k, v in full.items() if base.get(k) != v}
        out[name] = {**base, "variants": variants}
    return out


def _header() -> str:
    width = max(len(name) for name, _, _ in FIELDS)
    rows = "\n".join(f"#   {name:<{width}}  {text}" for name, text, _ in FIELDS)
    return (
        "# GENERATED by scripts/gen-chart-profiles.py from serving/catalog/profiles/*.yaml, the\n"
        "# planner, the launcher and helm/chart-layouts.yaml. Do not edit: change the catalog or\n"
        "# the layouts and regenerate (then scripts/gen-values-schema.py).\n"
        "#\n"
        "# vLLM serving profiles by name. A model in values.yaml picks one with `profile:` (and\n"
        "# optionally `variant:`), then overrides any field.\n"
        "#\n"
        "# Fields (all may be overridden per model in values.yaml):\n"
        f"{rows}\n"
    )


def render(data: dict[str, Any]) -> str:
    blocks = [
        yaml.safe_dump({name: body}, sort_keys=False, default_flow_style=None, width=100)
        for name, body in data.items()
    ]
    return _header() + "\n" + "\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the file to write or check")
    args = parser.parse_args(argv)
    settings = yaml.safe_load(LAYOUTS.read_text())
    unmatched = [label for label in settings["gpuProducts"] if gpu_for_label(label) is None]
    for label in unmatched:
        print(f"note: {label} matches no catalog GPU yet; left out", file=sys.stderr)
    try:
        text = render(generate(settings, load_profiles()))
    except GenerateError as exc:
        print(f"gen-chart-profiles: error: {exc}", file=sys.stderr)
        return 2
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            fix = "run python scripts/gen-chart-profiles.py"
            print(f"{shown} differs from the catalog: {fix}", file=sys.stderr)
            return 1
        print(f"{shown} is current")
        return 0
    args.output.write_text(text)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
