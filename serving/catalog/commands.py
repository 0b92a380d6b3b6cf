"""`serving plan`, `serving profiles` and `serving gpus`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from serving.catalog.errors import CatalogError
from serving.catalog.gpus import all_gpus, match_gpu
from serving.catalog.planner import OBJECTIVES, minimum_setups, plan
from serving.catalog.profiles import get_profile, load_profiles
from serving.catalog.report import render_minimum, render_plan
from serving.engine.exitcodes import ExitCode

DEFAULT_REFERENCE_GPU = "h100-sxm"


def profiles_dir(args: argparse.Namespace) -> Path | None:
    """The user's profiles folder: `--profiles DIR`, else `SERVING_PROFILES_DIR`, else none."""
    given = getattr(args, "profiles", None) or os.environ.get("SERVING_PROFILES_DIR")
    return Path(given).expanduser() if given else None


def add_profiles_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profiles",
        metavar="DIR",
        help="extra profile YAML files (default: $SERVING_PROFILES_DIR)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_plan(subparsers)
    listing = subparsers.add_parser("profiles", help="list the model profiles, or show one")
    listing.add_argument("name", nargs="?", help="show this profile in full")
    listing.add_argument("--json", action="store_true", help="with NAME: print it as JSON")
    add_profiles_option(listing)
    listing.set_defaults(func=_cmd_profiles)
    gpus = subparsers.add_parser("gpus", help="list the GPU catalog, or map an nvidia-smi name")
    gpus.add_argument("--match", metavar="NAME", help="print the catalog id for this GPU name")
    gpus.set_defaults(func=_cmd_gpus)


def _register_plan(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="will MODEL fit these GPUs, and with which vLLM settings",
        description="Plan a model on GPUs. Exit 0: fits; 3: does not fit; 2: bad input.",
    )
    parser.add_argument("model", help="profile name (see `serving profiles`)")
    parser.add_argument("--gpu", default=DEFAULT_REFERENCE_GPU, help="catalog GPU id")
    parser.add_argument("--count", type=int, default=1, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1, help="nodes (pipeline parallel)")
    parser.add_argument("--context", type=int, help="tokens per sequence (max-model-len)")
    parser.add_argument("--concurrency", type=int, default=1, help="full-context sequences")
    parser.add_argument("--precision", choices=["bf16", "fp8"], help="weights precision")
    parser.add_argument("--kv-cache-dtype", choices=["auto", "fp8"], help="KV cache dtype")
    add_engine_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--minimum", action="store_true", help="print the smallest setups of --gpu that fit"
    )
    add_profiles_option(parser)
    parser.set_defaults(func=_cmd_plan)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _utilization(text: str) -> float:
    value = float(text)
    if not 0.1 < value <= 0.98:
        raise argparse.ArgumentTypeError(f"must be above 0.1 and at most 0.98 (got {value})")
    return value


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """vLLM settings the planner plans with and the launcher passes on (`serving launch` too)."""
    parser.add_argument("--tp", type=_positive, help="fix the tensor-parallel size")
    parser.add_argument(
        "--gpu-memory-utilization",
        type=_utilization,
        help="share of each GPU's memory vLLM may use (default: the profile's, 0.90)",
    )
    parser.add_argument(
        "--max-num-seqs", type=_positive, help="vLLM --max-num-seqs (default: vLLM's for the GPU)"
    )
    parser.add_argument(
        "--max-num-batched-tokens",
        type=_positive,
        help="vLLM --max-num-batched-tokens (default: vLLM's for the GPU)",
    )
    parser.add_argument(
        "--enforce-eager",
        action="store_true",
        default=None,
        help="no CUDA graphs: less memory and a faster start, slower decode",
    )
    parser.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default="capacity",
        help="how layouts are ranked (default: capacity, the most full-context sequences)",
    )


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `plan` that `add_engine_options` collects."""
    return {
        "tensor_parallel": args.tp,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "max_num_seqs": args.max_num_seqs,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "enforce_eager": args.enforce_eager,
        "objective": args.objective,
    }


def _cmd_plan(args: argparse.Namespace) -> int:
    try:
        profile = get_profile(args.model, profiles_dir(args))
        if args.minimum:
            setups = minimum_setups(profile, args.gpu, args.context)
            if args.json:
                print(json.dumps([s.model_dump(mode="json") for s in setups], indent=2))
            else:
                print(render_minimum(profile.name, setups))
            return ExitCode.OK
        result = plan(
            profile,
            args.gpu,
            count=args.count,
            nodes=args.nodes,
            context=args.context,
            concurrency=args.concurrency,
            precision=args.precision,
            kv_cache_dtype=args.kv_cache_dtype,
            **engine_kwargs(args),
        )
    except CatalogError as exc:
        print(f"serving plan: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(result.model_dump_json(indent=2) if args.json else render_plan(result))
    return ExitCode.OK if result.fits else ExitCode.DOES_NOT_FIT


def _cmd_profiles(args: argparse.Namespace) -> int:
    try:
        profiles = load_profiles(profiles_dir(args))
        if args.name:
            dumped = get_profile(args.name, profiles_dir(args)).model_dump(mode="json")
            print(json.dumps(dumped, indent=2) if args.json else yaml.safe_dump(dumped))
            return ExitCode.OK
    except CatalogError as exc:
        print(f"serving profiles: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for profile in profiles.values():
        arch = profile.architecture
        gated = " (gated)" if profile.gated else ""
        print(
            f"{profile.name:<16} {profile.display_name}{gated}: {arch.params_total_b:g}B params, "
            f"{profile.native_context:,} ctx, {profile.precision}, {profile.engine.runtime}"
        )
    return ExitCode.OK


def _cmd_gpus(args: argparse.Namespace) -> int:
    if args.match is not None:
        gpu = match_gpu(args.match)
        if gpu is None:
            print(f"serving gpus: no catalog GPU matches {args.match!r}", file=sys.stderr)
            return ExitCode.USAGE
        print(gpu.id)
        return ExitCode.OK
    for gpu in all_gpus():
        fp8 = "fp8" if gpu.fp8 else "no fp8"
        print(
            f"{gpu.id:<12} {gpu.name:<50} {gpu.torch_total_gib:6.2f} GiB "
            f"{gpu.bandwidth_tbps:5.2f} TB/s {fp8:<6} {gpu.interconnect}"
        )
    return ExitCode.OK
