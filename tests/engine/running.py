"""Start and stop the real engine for the session fixture `engine` (tests/conftest.py), and
small process helpers the engine tests share."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.engine.process import wait_group_gone

REPO_ROOT = Path(__file__).resolve().parents[2]
# Only a guard against a hung launcher: the launcher enforces its own budget (600 s on the CPU)
# and exits when it is spent, which the fixture reports at once.
ENGINE_STARTUP_BUDGET_S = 900.0
ENGINE_STOP_BUDGET_S = 60.0
SERVED_MODEL = "smollm2"


@dataclass(frozen=True)
class RunningEngine:
    """Handle on the session's engine."""

    port: int
    base_url: str  # "http://127.0.0.1:PORT/v1"
    served_model: str
    launcher_pid: int  # `serving launch` (its own process group)
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def engine_pid(self) -> int | None:
        """The vLLM server's pid (leader of a further process group), from the launcher's log."""
        found = re.findall(r"\[engine\] started pid (\d+)", self.log_path.read_text())
        return int(found[-1]) if found else None


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def start_engine(log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_tcp_port()
    argv = [sys.executable, "-m", "serving", "launch", "smollm2-135m"]
    argv += ["--port", str(port), "--host", "127.0.0.1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port


def terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a launcher that failed to start: SIGTERM lets it take its vLLM group down too."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=ENGINE_STOP_BUDGET_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def stop(process: subprocess.Popen[bytes], handle: RunningEngine) -> None:
    engine_pid = handle.engine_pid()
    os.killpg(process.pid, signal.SIGTERM)
    try:
        status = process.wait(timeout=ENGINE_STOP_BUDGET_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"`serving launch` ignored SIGTERM:\n{handle.log_tail()}")
    leftovers = [pid for pid in (process.pid, engine_pid) if pid and not wait_group_gone(pid, 10)]
    for pgid in leftovers:
        os.killpg(pgid, signal.SIGKILL)
    assert not leftovers, f"process groups left behind after SIGTERM: {leftovers}"
    assert status == 0, f"`serving launch` exited {status} on SIGTERM:\n{handle.log_tail()}"
    log = handle.log_path.read_text(errors="replace")
    for noise in ("nanobind: leaked", "resource_tracker: There appear to be"):
        assert noise not in log, f"shutdown noise {noise!r} in the engine's output"
