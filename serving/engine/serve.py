"""`serving serve`: the embedded engine and the gateway in front of it, as two child processes.

    serving serve ──┬─ serving launch smollm2-135m   (own process group; supervises vLLM,
                    │                                 itself in a further group)
                    └─ serving gateway --config FILE (own process group)

The engine starts first and must be healthy before the gateway starts. The embedded engine is
then self-checked against the transformers reference (serving.engine.selfcheck): a mismatch is
a loud warning naming the dtype and the CPU flags, and serving goes on (`serving model check`
is the strict form). SIGINT (Ctrl-C) and
SIGTERM stop the gateway first, waiting for its drain (`server.drain` in its config: streams in
flight finish, up to the deadline), then the engine (whose launcher drains vLLM), each by
process group. If either child dies, the other is stopped too and the exit code says which one
failed; a stop that had to SIGKILL a child, or a gateway drain that had to cut requests, exits
`DRAIN_INCOMPLETE` (11) instead of 0.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from serving.engine.exitcodes import ExitCode
from serving.engine.process import ChildProcess
from serving.engine.reference import load_reference
from serving.engine.selfcheck import SelfCheckError, ask_engine, read_cpu, render
from serving.engine.settings import EngineSettings
from serving.engine.supervisor import Startup, wait_healthy

Reporter = Callable[[str], None]
# The launcher enforces the engine's own startup budget (sized to the model) and exits when it
# is spent; this outer bound only catches a launcher that hangs. Weights downloads of a 405B model
# can take hours, so it is generous.
ENGINE_STARTUP_S = 24 * 3600.0
GATEWAY_STARTUP_S = 60.0
# The launcher drains vLLM for up to 30 s; give it that and a margin before SIGKILL.
ENGINE_STOP_GRACE_S = 45.0
# The gateway drains on SIGTERM for up to its config's `server.drain` deadline (and window),
# then cuts what is left; it gets that plus this margin before SIGKILL.
GATEWAY_STOP_MARGIN_S = 10.0


@dataclass(frozen=True)
class SelfCheck:
    """What the self-check after startup needs: the prepared folder and the engine's dtype."""

    folder: Path
    dtype: str


@dataclass(frozen=True)
class ServeOptions:
    config: Path
    host: str = "127.0.0.1"
    port: int = 8000
    engine_host: str = "127.0.0.1"
    engine_port: int = 8001
    profile: str = "smollm2-135m"
    served_model: str = "smollm2"
    profiles_dir: Path | None = None
    launch_args: tuple[str, ...] = ()  # e.g. ("--gpu", "h100-sxm", "--count", "2")
    self_check: SelfCheck | None = None  # None: GPU profiles (no reference to compare with)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_argv(options: ServeOptions) -> list[str]:
    argv = [sys.executable, "-m", "serving", "launch", options.profile]
    argv += ["--host", options.engine_host, "--port", str(options.engine_port)]
    if options.profiles_dir is not None:
        argv += ["--profiles", str(options.profiles_dir)]
    return [*argv, *options.launch_args]


def gateway_argv(options: ServeOptions) -> list[str]:
    argv = [sys.executable, "-m", "serving", "gateway", "--config", str(options.config)]
    return [*argv, "--host", options.host, "--port", str(options.port)]


def usage_hint(options: ServeOptions) -> str:
    base = f"http://{options.host}:{options.port}"
    model = options.served_model
    openai_body = f'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
    anthropic_body = (
        f'{{"model": "{model}", "max_tokens": 64, '
        f'"messages": [{{"role": "user", "content": "Hello!"}}]}}'
    )
    return "\n".join(
        [
            f"serving is up: gateway {base} -> engine "
            f"http://{options.engine_host}:{options.engine_port}",
            "",
            "OpenAI dialect:",
            f"  curl {base}/v1/chat/completions -H 'content-type: application/json' \\",
            f"    -d '{openai_body}'",
            "",
            "Anthropic dialect (any key unless the config sets server.api_keys_env):",
            f"  curl {base}/v1/messages -H 'content-type: application/json' \\",
            "    -H 'x-api-key: local' -H 'anthropic-version: 2023-06-01' \\",
            f"    -d '{anthropic_body}'",
            "",
            "Ctrl-C stops both.",
        ]
    )


def answers_http(url: str) -> bool:
    """True once anything answers HTTP at `url` (the gateway is listening)."""
    try:
        httpx.get(url, timeout=2.0)
    except httpx.TransportError:
        return False
    return True


def _wait_gateway(gateway: ChildProcess, url: str, stop: threading.Event) -> Startup:
    deadline = time.monotonic() + GATEWAY_STARTUP_S
    while time.monotonic() < deadline:
        if stop.is_set():
            return Startup.STOPPED
        if gateway.poll() is not None:
            return Startup.EXITED
        if answers_http(url):
            return Startup.HEALTHY
        stop.wait(0.5)
    return Startup.TIMED_OUT


def run_serve(options: ServeOptions, stop: threading.Event, report: Reporter = _stderr) -> ExitCode:
    engine_health = f"http://{_loopback(options.engine_host)}:{options.engine_port}/health"
    gateway_url = f"http://{_loopback(options.host)}:{options.port}/health"
    # Something already listening would pass for our engine or gateway: refuse at once.
    for url in (engine_health, gateway_url):
        if answers_http(url):
            report(f"[serve] {url.removesuffix('/health')} is already in use: stop it first")
            return ExitCode.USAGE
    engine = ChildProcess(engine_argv(options))
    gateway = ChildProcess(gateway_argv(options))
    engine.start()
    report(f"[serve] engine starting (pid {engine.pid}); waiting for {engine_health}")
    try:
        outcome = wait_healthy(engine, engine_health, ENGINE_STARTUP_S, stop)
        if outcome is not Startup.HEALTHY:
            report(f"[serve] engine {outcome.value}")
            return _engine_failure(outcome, engine.poll())
        if options.self_check is not None:
            run_self_check(options, options.self_check, report)
        gateway.start()
        report(f"[serve] gateway starting (pid {gateway.pid})")
        outcome = _wait_gateway(gateway, gateway_url, stop)
        if outcome is not Startup.HEALTHY:
            report(f"[serve] gateway {outcome.value}")
            return ExitCode.OK if outcome is Startup.STOPPED else ExitCode.GATEWAY_FAILED
        print(usage_hint(options), flush=True)
        code = _watch(engine, gateway, stop, report)
    finally:
        clean = _stop_both(engine, gateway, gateway_grace(options.config), report)
    return code if code is not ExitCode.OK or clean else ExitCode.DRAIN_INCOMPLETE


def gateway_grace(config: Path) -> float:
    """How long the gateway may take to drain before it is killed: its drain settings."""
    from serving.gateway.settings import ConfigError, load_settings

    try:
        drain = load_settings(config).server.drain
    except ConfigError:
        return GATEWAY_STOP_MARGIN_S  # it will not have started with that config anyway
    return max(drain.deadline, drain.window) + GATEWAY_STOP_MARGIN_S


def run_self_check(options: ServeOptions, check: SelfCheck, report: Reporter) -> bool:
    """Compare the engine's answers with the reference; warn loudly on a mismatch."""
    reference = load_reference(check.folder)
    if reference is None:
        report(f"[serve] warning: no self-check reference in {check.folder}; skipped")
        return False
    base_url = f"http://{_loopback(options.engine_host)}:{options.engine_port}/v1"
    try:
        api_key = EngineSettings.from_env().vllm_api_key  # the engine's own key, if it has one
        result = ask_engine(base_url, options.served_model, reference, api_key=api_key)
    except SelfCheckError as exc:
        report(f"[serve] warning: the engine self-check could not run: {exc}")
        return False
    message = render(result, check.dtype, read_cpu())
    if result.ok:
        report(f"[serve] {message}")
        return True
    banner = "!" * 78
    report("\n".join([banner, message, "  Answers from this engine are unreliable.", banner]))
    return False


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def _engine_failure(outcome: Startup, status: int | None) -> ExitCode:
    """The launcher's own exit code says what failed (no fit, no weights, ...): pass it on."""
    if outcome is Startup.STOPPED:
        return ExitCode.OK
    known = {code.value for code in ExitCode} - {ExitCode.OK.value}
    return ExitCode(status) if status in known else ExitCode.STARTUP_FAILED


def _watch(
    engine: ChildProcess, gateway: ChildProcess, stop: threading.Event, report: Reporter
) -> ExitCode:
    while not stop.wait(0.5):
        if engine.poll() is not None:
            report(f"[serve] the engine exited with status {engine.poll()}; stopping")
            return ExitCode.CRASHED
        if gateway.poll() is not None:
            report(f"[serve] the gateway exited with status {gateway.poll()}; stopping")
            return ExitCode.GATEWAY_FAILED
    report("[serve] stopping")
    return ExitCode.OK


def _stop_both(
    engine: ChildProcess, gateway: ChildProcess, gateway_grace_s: float, report: Reporter
) -> bool:
    """Gateway first (its drain finishes before the engine goes), then the engine. False when
    either had to be killed or the gateway's drain cut requests."""
    clean = True
    if gateway.poll() is None:
        status = gateway.stop(gateway_grace_s)
        if gateway.killed:
            report(f"[serve] the gateway did not drain within {gateway_grace_s:g}s: killed")
            clean = False
        elif status == ExitCode.DRAIN_INCOMPLETE:
            report("[serve] the gateway's drain deadline cut requests still in flight")
            clean = False
    engine.stop(ENGINE_STOP_GRACE_S)
    if engine.killed:
        report(f"[serve] the engine did not stop within {ENGINE_STOP_GRACE_S:g}s: killed")
        clean = False
    report("[serve] stopped")
    return clean
