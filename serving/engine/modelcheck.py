"""`serving model check`: start the embedded engine (or use a running one) and self-check it.

Exit 0 when the engine's answers match the transformers reference, 10 when they do not (the
message names the dtype and the CPU flags), 4 when the prepared model is missing or damaged,
6 when the engine does not start.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.engine.embedded import EmbeddedModelError, ensure_embedded_model, read_manifest
from serving.engine.exitcodes import ExitCode
from serving.engine.launch import LaunchError, LaunchOptions, prepare_spec
from serving.engine.process import ChildProcess
from serving.engine.reference import Reference, load_reference
from serving.engine.selfcheck import (
    CheckResult,
    SelfCheckError,
    ask_engine,
    dtype_in,
    read_cpu,
    render,
    with_dtype,
)
from serving.engine.settings import EngineSettings
from serving.engine.supervisor import Startup, wait_healthy

Reporter = Callable[[str], None]
ENGINE_STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class CheckOptions:
    profile: str = "smollm2-135m"
    dtype: str | None = None  # override the profile's --dtype (to test another one)
    engine_url: str | None = None  # check this running engine (".../v1") instead of starting one
    served_model: str = "smollm2"
    startup_timeout_s: float | None = None
    profiles_dir: Path | None = None


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verified_reference(folder: Path) -> Reference:
    """The folder's reference, after checking every file against the manifest's checksums."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise EmbeddedModelError(f"{folder} has no manifest: run `serving model prepare --force`")
    damaged = manifest.damaged_files(folder)
    if damaged:
        names = ", ".join(damaged)
        raise EmbeddedModelError(
            f"{names} in {folder} changed since it was prepared: run `serving model prepare "
            "--force`"
        )
    reference = load_reference(folder)
    if reference is None:
        raise EmbeddedModelError(f"{folder} has no reference: run `serving model prepare --force`")
    return reference


def run_model_check(
    options: CheckOptions,
    stop: threading.Event,
    settings: EngineSettings | None = None,
    report: Reporter = _stderr,
) -> ExitCode:
    settings = settings or EngineSettings.from_env()
    try:
        reference = verified_reference(ensure_embedded_model(settings, report=report))
    except (EmbeddedModelError, OSError) as exc:
        report(f"serving model check: {exc}")
        return ExitCode.MODEL_UNAVAILABLE
    try:
        if options.engine_url:
            dtype = options.dtype or "as launched"
            result = ask_engine(
                options.engine_url, options.served_model, reference, api_key=settings.vllm_api_key
            )
        else:
            outcome = _start_and_check(options, settings, reference, stop, report)
            if isinstance(outcome, ExitCode):
                return outcome
            dtype, result = outcome
    except SelfCheckError as exc:
        report(f"serving model check: {exc}")
        return ExitCode.STARTUP_FAILED
    message = render(result, dtype, read_cpu())
    if result.ok:
        print(message, flush=True)
        return ExitCode.OK
    report(message)
    return ExitCode.SELF_CHECK_FAILED


def _start_and_check(
    options: CheckOptions,
    settings: EngineSettings,
    reference: Reference,
    stop: threading.Event,
    report: Reporter,
) -> tuple[str, CheckResult] | ExitCode:
    launch = LaunchOptions(
        model=options.profile,
        port=free_port(),
        startup_timeout_s=options.startup_timeout_s,
        profiles_dir=options.profiles_dir,
    )
    try:
        spec, _, profile = prepare_spec(launch, settings, report)
    except LaunchError as exc:
        report(f"serving model check: {exc}")
        return exc.code
    argv = with_dtype(spec.argv, options.dtype) if options.dtype else spec.argv
    dtype = dtype_in(argv)
    with tempfile.NamedTemporaryFile(prefix="serving-check-", suffix=".log") as log:
        engine = ChildProcess(argv, spec.env, stdout=log)
        engine.start()
        report(f"[check] engine starting with dtype {dtype} (pid {engine.pid}, log {log.name})")
        try:
            outcome = wait_healthy(engine, spec.health_url, spec.startup_budget_s, stop)
            if outcome is Startup.STOPPED:
                return ExitCode.OK
            if outcome is not Startup.HEALTHY:
                tail = Path(log.name).read_text(errors="replace").splitlines()[-30:]
                report(f"[check] the engine {outcome.value}; log tail:\n" + "\n".join(tail))
                return ExitCode.STARTUP_FAILED
            return dtype, ask_engine(
                spec.base_url, profile.served_model_name, reference, api_key=settings.vllm_api_key
            )
        finally:
            engine.stop(ENGINE_STOP_GRACE_S)
