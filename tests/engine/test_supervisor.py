"""The supervisor and process groups, against the fake engine (no real vLLM)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving.catalog.profiles import get_profile
from serving.engine.exitcodes import ExitCode
from serving.engine.launcher import LaunchSpec, build_cpu_command
from serving.engine.process import ChildProcess, group_alive
from serving.engine.supervisor import RestartPolicy, Supervisor
from tests.engine.fakes import FakeProfiles
from tests.engine.running import REPO_ROOT, free_tcp_port

FAST = RestartPolicy(max_restarts=2, window_s=60, backoff_initial_s=0.1, drain_s=5)


def _spec(profiles: Path, name: str = "fake-cpu", budget: float = 20.0) -> LaunchSpec:
    spec = build_cpu_command(
        get_profile(name, profiles),
        python=sys.executable,
        model_dir=Path("/nonexistent/model"),
        host="127.0.0.1",
        port=free_tcp_port(),
    )
    return dataclasses.replace(spec, startup_budget_s=budget)


def _pids(pidfile: Path) -> list[tuple[int, int]]:
    lines = pidfile.read_text().split("\n") if pidfile.exists() else []
    return [(int(a), int(b)) for a, b in (line.split() for line in lines if line.strip())]


def _run_in_thread(
    supervisor: Supervisor, stop: threading.Event
) -> tuple[threading.Thread, list[ExitCode]]:
    result: list[ExitCode] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run(stop)))
    thread.start()
    return thread, result


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_stop_request_kills_the_whole_group(tmp_path: Path, fake_profiles: FakeProfiles) -> None:
    pidfile = tmp_path / "pids"
    spec = _spec(fake_profiles("ok", pidfile))
    messages: list[str] = []
    stop = threading.Event()
    thread, result = _run_in_thread(Supervisor(spec, policy=FAST, report=messages.append), stop)
    _wait_for(lambda: any("healthy" in m for m in messages))
    assert httpx.get(spec.health_url).status_code == 200
    [(server, helper)] = _pids(pidfile)
    stop.set()
    thread.join(30)
    assert result == [ExitCode.OK]
    assert not group_alive(server)
    with pytest.raises(ProcessLookupError):
        os.kill(helper, 0)


def test_crashes_are_restarted_then_given_up(tmp_path: Path, fake_profiles: FakeProfiles) -> None:
    pidfile = tmp_path / "pids"
    spec = _spec(fake_profiles("crash", pidfile))
    messages: list[str] = []
    code = Supervisor(spec, policy=FAST, report=messages.append).run(threading.Event())
    assert code == ExitCode.CRASHED
    # max_restarts=2: the first run and two restarts, then the third crash gives up.
    assert len(_pids(pidfile)) == 3
    assert sum("restarting in" in m for m in messages) == 2
    assert all(not group_alive(server) for server, _ in _pids(pidfile))


def test_an_engine_that_exits_at_start_is_a_startup_failure(fake_profiles: FakeProfiles) -> None:
    messages: list[str] = []
    spec = _spec(fake_profiles("fail"))
    code = Supervisor(spec, policy=FAST, report=messages.append).run(threading.Event())
    assert code == ExitCode.STARTUP_FAILED
    assert any("exit status 1" in m for m in messages)


def test_an_engine_that_never_gets_healthy_times_out(
    tmp_path: Path, fake_profiles: FakeProfiles
) -> None:
    pidfile = tmp_path / "pids"
    spec = _spec(fake_profiles("hang", pidfile), budget=2.0)
    messages: list[str] = []
    code = Supervisor(spec, policy=FAST, report=messages.append).run(threading.Event())
    assert code == ExitCode.STARTUP_FAILED
    assert any("timed out" in m for m in messages)
    [(server, _helper)] = _pids(pidfile)
    assert not group_alive(server)


def test_child_process_stop_escalates_to_sigkill() -> None:
    # A child that ignores SIGTERM is killed once the grace period is over.
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    child = ChildProcess([sys.executable, "-c", code], stdout=subprocess.PIPE)
    child.start()
    with child.output as output:
        assert output.readline() == b"ready\n"  # the SIGTERM handler is in place
        status = child.stop(grace_s=1.0)
    assert status == -signal.SIGKILL
    assert not group_alive(child.pid)


def test_sigterm_to_serving_launch_leaves_no_engine_behind(
    tmp_path: Path, fake_profiles: FakeProfiles
) -> None:
    pidfile = tmp_path / "pids"
    profiles = fake_profiles("ok", pidfile)
    port = free_tcp_port()
    argv = [sys.executable, "-m", "serving", "launch", "fake-cpu", "--profiles", str(profiles)]
    launcher = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _pids(pidfile) and _healthy(port), timeout=60)
        [(server, helper)] = _pids(pidfile)
        os.killpg(launcher.pid, signal.SIGTERM)
        assert launcher.wait(30) == ExitCode.OK
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait(10)
    assert launcher.stdout is not None
    with launcher.stdout:
        output = launcher.stdout.read().decode()
    assert "[engine] stopped" in output
    assert not group_alive(server)
    assert not group_alive(launcher.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(helper, 0)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
