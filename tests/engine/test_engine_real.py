"""The real vLLM CPU engine, started once per session by the `engine` fixture (tests/conftest.py)
through `serving launch smollm2-135m`. Teardown checks SIGTERM leaves no process behind."""

from __future__ import annotations

import os

import httpx
import pytest
from openai import OpenAI

from serving.engine.process import group_alive
from tests.engine.running import RunningEngine

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
