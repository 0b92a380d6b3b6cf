"""A CPU profile whose server module is tests/engine/fake_vllm.py, for engine tests that must not
start real vLLM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

FakeProfiles = Callable[..., Path]


def fake_profile(
    name: str = "fake-cpu", mode: str = "ok", pidfile: Path | None = None
) -> dict[str, object]:
    env = {"FAKE_VLLM_MODE": mode}
    if pidfile is not None:
        env["FAKE_VLLM_PIDFILE"] = str(pidfile)
    return {
        "name": name,
        "display_name": "fake CPU engine for tests",
        "served_model_name": "smollm2",
        "source": "embedded",
        "architecture": {
            "family": "llama",
            "layers": 2,
            "attention_heads": 4,
            "kv_heads": 2,
            "head_dim": 16,
            "hidden_size": 64,
            "vocab_size": 256,
            "params_total_b": 0.001,
            "params_active_b": 0.001,
        },
        "native_context": 2048,
        "default_context": 2048,
        "precision": "bf16",
        "weights": {"bf16": {"repo": "tests/fake", "revision": "main"}},
        "engine": {"runtime": "cpu", "module": "tests.engine.fake_vllm", "env": env},
    }
