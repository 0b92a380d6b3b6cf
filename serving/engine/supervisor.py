"""Run an engine: start it, wait for `/health`, restart it when it crashes, stop it on request.

Policy (docs/engine.md):
- startup: the engine must answer `GET /health` with 200 within the spec's startup budget. An
  engine that exits or stays unhealthy during startup is not retried (the cause is almost always
  deterministic: flags, memory, weights): exit STARTUP_FAILED.
- crashes after it was healthy are restarted with exponential backoff (2 s, 4 s, … capped at
  60 s); more than `max_restarts` crashes within `window_s` gives up: exit CRASHED.
- a stop request (SIGTERM/SIGINT, delivered as `stop.set()`) drains and stops the engine's
  process group, then exits OK.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import IO

import httpx

from serving.engine.exitcodes import ExitCode
from serving.engine.launcher import LaunchSpec
from serving.engine.process import ChildProcess
from serving.engine.quiet import OutputPump

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 600.0
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 60.0
    drain_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, attempt - 1)))


class Startup(Enum):
    HEALTHY = "healthy"
    EXITED = "exited"
    TIMED_OUT = "timed out"
    STOPPED = "stopped"


def probe(url: str, timeout_s: float = 2.0) -> bool:
    """One health probe: True on HTTP 200; a refused or failed connection means not yet."""
    try:
        return httpx.get(url, timeout=timeout_s).status_code == httpx.codes.OK
    except httpx.TransportError:
        return False


def wait_healthy(
    child: ChildProcess, url: str, budget_s: float, stop: threading.Event, interval_s: float = 1.0
) -> Startup:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if stop.is_set():
            return Startup.STOPPED
        if child.poll() is not None:
            return Startup.EXITED
        if probe(url):
            return Startup.HEALTHY
        stop.wait(interval_s)
    return Startup.TIMED_OUT


class Supervisor:
    """Keeps one engine running until asked to stop."""

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        policy: RestartPolicy | None = None,
        report: Reporter,
        log: IO[bytes] | None = None,
    ) -> None:
        self.spec = spec
        self.policy = policy or RestartPolicy()
        self.report = report
        self.log = log
        self.crashes: list[float] = []

    def run(self, stop: threading.Event) -> ExitCode:
        while True:
            child = ChildProcess(self.spec.argv, self.spec.env, stdout=subprocess.PIPE)
            child.start()
            # The engine's output passes through a filter that drops its shutdown noise.
            pump = OutputPump(child.output, self.log or sys.stdout.buffer)
            try:
                verdict = self._run_once(child, stop)
            finally:
                pump.join()
            if verdict is not None:
                return verdict

    def _run_once(self, child: ChildProcess, stop: threading.Event) -> ExitCode | None:
        """One engine's life: None when it crashed and should be restarted."""
        self.report(f"[engine] started pid {child.pid}; waiting for {self.spec.health_url}")
        started = time.monotonic()
        outcome = wait_healthy(child, self.spec.health_url, self.spec.startup_budget_s, stop)
        if outcome is not Startup.HEALTHY:
            return self._startup_ended(child, outcome)
        elapsed = time.monotonic() - started
        self.report(f"[engine] healthy after {elapsed:.0f} s: {self.spec.base_url}")
        status = self._watch(child, stop)
        if status is None:
            return ExitCode.OK
        child.stop(self.policy.drain_s)  # reap helpers the crashed engine left behind
        return self._after_crash(status, stop)

    def _startup_ended(self, child: ChildProcess, outcome: Startup) -> ExitCode:
        status = child.stop(self.policy.drain_s)
        if outcome is Startup.STOPPED:
            self.report("[engine] stopped during startup")
            return ExitCode.OK
        budget = self.spec.startup_budget_s
        detail = f"exit status {status}" if outcome is Startup.EXITED else f"within {budget:.0f} s"
        self.report(f"[engine] failed to start: {outcome.value} ({detail})")
        return ExitCode.STARTUP_FAILED

    def _watch(self, child: ChildProcess, stop: threading.Event) -> int | None:
        """Block until the engine exits (its status) or a stop is requested (None)."""
        while not stop.is_set():
            status = child.poll()
            if status is not None:
                return status
            stop.wait(0.5)
        self.report(f"[engine] stopping (drain up to {self.policy.drain_s:.0f} s)")
        child.stop(self.policy.drain_s)
        self.report("[engine] stopped")
        return None

    def _after_crash(self, status: int, stop: threading.Event) -> ExitCode | None:
        now = time.monotonic()
        self.crashes = [t for t in self.crashes if now - t < self.policy.window_s] + [now]
        if len(self.crashes) > self.policy.max_restarts:
            self.report(
                f"[engine] exited with status {status}; {len(self.crashes)} crashes in "
                f"{self.policy.window_s:.0f} s: giving up"
            )
            return ExitCode.CRASHED
        delay = self.policy.backoff(len(self.crashes))
        self.report(f"[engine] exited with status {status}; restarting in {delay:.0f} s")
        if stop.wait(delay):
            return ExitCode.OK
        return None
