"""Weight fetching: clear errors when huggingface_hub is missing or the offline cache is empty."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from serving.catalog.profiles import get_profile
from serving.engine.fetch import FetchError, fetch_weights
from serving.engine.settings import EngineSettings


def test_missing_huggingface_hub_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    settings = EngineSettings.from_env({})
    with pytest.raises(FetchError, match=r"serving\[fetch\]"):
        fetch_weights(get_profile("mistral-7b"), "bf16", settings, lambda _: None)


def test_offline_mode_uses_only_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = EngineSettings.from_env({"HF_HUB_OFFLINE": "1"})
    assert settings.hf_offline
    messages: list[str] = []
    with pytest.raises(FetchError, match="HF_HUB_OFFLINE=1 forbids downloading"):
        fetch_weights(get_profile("llama-3.1-8b"), "bf16", settings, messages.append)
    assert any("not pinned" in m for m in messages)
    assert any("local cache only" in m for m in messages)
