"""`serving serve` end to end with the fake engine (the real gateway, no real vLLM): both children
start in order, requests flow through, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from serving.engine.exitcodes import ExitCode
from serving.engine.process import group_alive
from tests.engine.fakes import FakeProfiles
from tests.engine.running import REPO_ROOT, free_tcp_port


def _config(path: Path, engine_port: int) -> Path:
    config = {
        "upstreams": [
            {
                "name": "embedded",
                "dialect": "openai",
                "base_url": f"http://127.0.0.1:{engine_port}/v1",
                "locality": "local",
            }
        ],
        "routes": [{"model": "smollm2", "targets": [{"upstream": "embedded", "model": "smollm2"}]}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class _Lines:
    """Collect a child's output lines in a thread (select() misses lines already buffered)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")))
        self.thread.start()

    def wait_for(self, process: subprocess.Popen[str], marker: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while marker not in "".join(self.lines):
            assert process.poll() is None, f"serve exited {process.returncode}:\n{self.text}"
            assert time.monotonic() < deadline, f"no {marker!r} within {timeout} s:\n{self.text}"
            time.sleep(0.2)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _pids(pidfile: Path) -> list[int]:
    return [int(p) for line in pidfile.read_text().splitlines() for p in line.split()]


def _start_serve(tmp_path: Path, profiles: Path) -> tuple[subprocess.Popen[str], int, int]:
    engine_port, port = free_tcp_port(), free_tcp_port()
    argv = [
        sys.executable,
        "-m",
        "serving",
        "serve",
        "--config",
        str(_config(tmp_path / "gw.yaml", engine_port)),
    ]
    argv += ["--engine-port", str(engine_port), "--port", str(port)]
    argv += ["--profile", "fake-cpu", "--profiles", str(profiles)]
    serve = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return serve, engine_port, port


def _stop(serve: subprocess.Popen[str], lines: _Lines | None) -> None:
    if serve.poll() is None:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(10)
    if lines is not None:
        lines.thread.join(10)
    assert serve.stdout is not None
    serve.stdout.close()


def test_serve_runs_engine_then_gateway_and_ctrl_c_stops_both(
    tmp_path: Path, fake_profiles: FakeProfiles
) -> None:
    pidfile = tmp_path / "pids"
    serve, engine_port, port = _start_serve(tmp_path, fake_profiles("ok", pidfile))
    lines = None
    try:
        lines = _Lines(serve)
        output = lines.wait_for(serve, "Ctrl-C stops both.", timeout=90)
        assert "[serve] self-check passed: 3 prompts" in output
        assert f"curl http://127.0.0.1:{port}/v1/chat/completions" in output
        assert "anthropic-version: 2023-06-01" in output and "/v1/messages" in output
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={
                "model": "smollm2",
                "messages": [{"role": "user", "content": "Capital of France?"}],
            },
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert "Paris" in reply.json()["choices"][0]["message"]["content"]
        engine_pids = _pids(pidfile)
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(60) == ExitCode.OK
        lines.thread.join(10)
        assert "[serve] stopped" in lines.text
    finally:
        _stop(serve, lines)
    for pid in engine_pids:
        assert not group_alive(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"engine process {pid} survived Ctrl-C")
    for probe_port in (engine_port, port):
        try:
            httpx.get(f"http://127.0.0.1:{probe_port}/health", timeout=1)
        except httpx.TransportError:
            continue
        raise AssertionError(f"port {probe_port} still answers after Ctrl-C")


def test_serve_warns_loudly_when_the_engine_fails_its_self_check(
    tmp_path: Path, fake_profiles: FakeProfiles
) -> None:
    serve, _, port = _start_serve(tmp_path, fake_profiles("wrong"))
    lines = None
    try:
        lines = _Lines(serve)
        output = lines.wait_for(serve, "Ctrl-C stops both.", timeout=90)
        assert "SELF-CHECK FAILED" in output and "Answers from this engine are unreliable" in output
        assert "dtype auto" in output and "flags:" in output  # the fake profile sets no dtype
        # Still serving: the warning does not take the service down.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(60) == ExitCode.OK
    finally:
        _stop(serve, lines)


def test_serve_reports_a_gateway_that_fails(tmp_path: Path, fake_profiles: FakeProfiles) -> None:
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("routes: []\n")
    argv = [sys.executable, "-m", "serving", "serve", "--config", str(bad_config)]
    argv += ["--engine-port", str(free_tcp_port()), "--port", str(free_tcp_port())]
    argv += ["--profile", "fake-cpu", "--profiles", str(fake_profiles("ok"))]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == ExitCode.GATEWAY_FAILED, result.stderr
    assert "[serve] gateway exited" in result.stderr
    assert "[serve] stopped" in result.stderr


def test_serve_passes_on_the_launchers_exit_code(tmp_path: Path) -> None:
    # 70B in BF16 does not fit two H100s: the launcher exits 3 and so does serve, before any
    # gateway starts.
    config = _config(tmp_path / "gw.yaml", free_tcp_port())
    argv = [sys.executable, "-m", "serving", "serve", "--config", str(config)]
    argv += ["--profile", "llama-3.1-70b", "--gpu", "h100", "--count", "2"]
    argv += ["--engine-port", str(free_tcp_port()), "--port", str(free_tcp_port())]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == ExitCode.DOES_NOT_FIT, result.stderr
    assert "4x h100-sxm with BF16 (TP 4)" in result.stderr
    assert "gateway starting" not in result.stderr


def test_serve_refuses_a_port_already_in_use(tmp_path: Path) -> None:
    busy = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port := free_tcp_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        argv = [sys.executable, "-m", "serving", "serve", "--config", str(tmp_path / "x.yaml")]
        argv += ["--engine-port", str(port), "--port", str(free_tcp_port())]
        result = subprocess.run(
            argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        busy.terminate()
        busy.wait(10)
    assert result.returncode == ExitCode.USAGE
    assert f"http://127.0.0.1:{port} is already in use" in result.stderr
