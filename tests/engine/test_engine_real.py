"""The real vLLM CPU engine, started once per session by the `engine` fixture (tests/conftest.py)
through `serving launch smollm2-135m`. Teardown checks SIGTERM leaves no process behind."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from openai import OpenAI

from serving.engine.embedded import ensure_embedded_model
from serving.engine.exitcodes import ExitCode
from serving.engine.process import group_alive
from serving.engine.reference import load_reference
from serving.engine.selfcheck import MIN_COMPARED, ask_engine, read_cpu, render
from tests.engine.running import REPO_ROOT, RunningEngine

pytestmark = pytest.mark.engine


def test_engine_answers_a_chat_completion(engine: RunningEngine) -> None:
    client = OpenAI(base_url=engine.base_url, api_key="unused", timeout=120)
    reply = client.chat.completions.create(
        model=engine.served_model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=24,
        temperature=0,
    )
    text = reply.choices[0].message.content or ""
    assert "Paris" in text
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_engine_lists_the_served_model_and_runs_in_its_own_group(engine: RunningEngine) -> None:
    models = httpx.get(f"{engine.base_url}/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["smollm2"]
    vllm_pid = engine.engine_pid()
    assert vllm_pid is not None, engine.log_tail()
    # The launcher put vLLM in a process group of its own, distinct from the launcher's.
    assert os.getpgid(vllm_pid) == vllm_pid != engine.launcher_pid
    assert group_alive(vllm_pid)


def test_engine_passes_the_self_check_with_the_profile_dtype(engine: RunningEngine) -> None:
    # The session engine runs the profile's command line (float32): its answers must equal the
    # transformers reference token for token, and `serving model check` must say so.
    folder = ensure_embedded_model()
    reference = load_reference(folder)
    assert reference is not None
    result = ask_engine(engine.base_url, engine.served_model, reference)
    assert result.ok, render(result, "float32", read_cpu())
    assert result.compared >= MIN_COMPARED
    check = subprocess.run(
        [sys.executable, "-m", "serving", "model", "check", "--engine-url", engine.base_url],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == ExitCode.OK, check.stderr
    assert check.stdout.startswith("self-check passed")


def test_engine_log_has_no_health_probe_lines(engine: RunningEngine) -> None:
    for _ in range(3):
        assert httpx.get(f"http://127.0.0.1:{engine.port}/health", timeout=30).status_code == 200
    httpx.get(f"{engine.base_url}/models", timeout=30)
    log = engine.log_path.read_text(errors="replace")
    assert '"GET /v1/models HTTP/1.1" 200' in log  # requests are still logged
    assert '"GET /health HTTP/1.1"' not in log
