"""A child process in its own process group, stopped as a group.

vLLM forks helpers (the engine core, workers); signalling only the parent can leave them behind.
Every child therefore starts a new session (so its process group id is its pid), and stopping it
signals the whole group: SIGTERM, a grace period to drain, then SIGKILL. On Linux the child also
asks the kernel for SIGTERM when its parent dies, so even a SIGKILLed supervisor leaves no engine.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: no Python-level state is shared with the parent.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One command run as the leader of a new process group."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        stdout: IO[bytes] | int | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.env = dict(env) if env is not None else None
        self.stdout = stdout
        self._popen: subprocess.Popen[bytes] | None = None
        self.killed = False  # stop() had to SIGKILL what was left

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError("the child has not been started")
        return self._popen.pid

    def start(self) -> None:
        environment = {**os.environ, **self.env} if self.env is not None else None
        self._popen = subprocess.Popen(
            self.argv,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=subprocess.STDOUT if self.stdout is not None else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    @property
    def output(self) -> IO[bytes]:
        """The child's stdout+stderr, when it was started with `stdout=subprocess.PIPE`."""
        if self._popen is None or self._popen.stdout is None:
            raise RuntimeError("the child was not started with a pipe for its output")
        return self._popen.stdout

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self._popen.poll() if self._popen is not None else None

    def wait(self, timeout: float) -> int | None:
        if self._popen is None:
            return None
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM the group, give it `grace_s` to exit (leader and helpers), then SIGKILL what
        is left. Returns the leader's exit status."""
        if self._popen is None:
            return None
        deadline = time.monotonic() + grace_s
        self.signal_group(signal.SIGTERM)
        status = self.wait(grace_s)
        wait_group_gone(self.pid, max(0.0, deadline - time.monotonic()))
        if status is None or group_alive(self.pid):
            self.killed = True
            self.signal_group(signal.SIGKILL)
            status = self.wait(10.0) if status is None else status
            wait_group_gone(self.pid, 10.0)
        return status

    def signal_group(self, signum: int) -> None:
        # The group may already be gone (the child exited and took its helpers with it).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies of other parents included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_group_gone(pgid: int, timeout_s: float) -> bool:
    """Wait until no process of the group is left; False if some still are after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
