"""Session-wide fixtures. `engine`: one real vLLM CPU engine serving the embedded model.

The engine is started through `serving launch` exactly as a user would, once per test session
(it takes ~45-90 s on 2 cores), and stopped with SIGTERM at the end; teardown fails the session if
the launcher or the vLLM server it started leaves any process behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.engine.embedded import ensure_embedded_model
from serving.engine.process import group_alive

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE_STARTUP_BUDGET_S = 240.0
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


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.TransportError:
        return False


def _wait_gone(pgid: int, budget_s: float) -> bool:
    deadline = time.monotonic() + budget_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _start_engine(log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_tcp_port()
    argv = [sys.executable, "-m", "serving", "launch", "smollm2-135m"]
    argv += ["--port", str(port), "--host", "127.0.0.1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a launcher that failed to start: SIGTERM lets it take its vLLM group down too."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=ENGINE_STOP_BUDGET_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _stop(process: subprocess.Popen[bytes], handle: RunningEngine) -> None:
    engine_pid = handle.engine_pid()
    os.killpg(process.pid, signal.SIGTERM)
    try:
        status = process.wait(timeout=ENGINE_STOP_BUDGET_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"`serving launch` ignored SIGTERM:\n{handle.log_tail()}")
    leftovers = [pid for pid in (process.pid, engine_pid) if pid and not _wait_gone(pid, 10)]
    for pgid in leftovers:
        os.killpg(pgid, signal.SIGKILL)
    assert not leftovers, f"process groups left behind after SIGTERM: {leftovers}"
    assert status == 0, f"`serving launch` exited {status} on SIGTERM:\n{handle.log_tail()}"


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """A real vLLM CPU engine on 127.0.0.1 serving SmolLM2 as "smollm2"."""
    ensure_embedded_model()
    log_path = tmp_path_factory.mktemp("engine") / "engine.log"
    started = time.monotonic()
    process, port = _start_engine(log_path)
    handle = RunningEngine(
        port=port,
        base_url=f"http://127.0.0.1:{port}/v1",
        served_model=SERVED_MODEL,
        launcher_pid=process.pid,
        log_path=log_path,
    )
    while not _healthy(f"http://127.0.0.1:{port}/health"):
        if process.poll() is not None or time.monotonic() - started > ENGINE_STARTUP_BUDGET_S:
            _terminate(process)
            pytest.fail(
                f"the engine did not become healthy (launcher status {process.poll()}) "
                f"within {ENGINE_STARTUP_BUDGET_S:.0f} s; log tail:\n{handle.log_tail()}"
            )
        time.sleep(1.0)
    print(f"\n[engine fixture] healthy after {time.monotonic() - started:.0f} s on port {port}")
    yield handle
    _stop(process, handle)
