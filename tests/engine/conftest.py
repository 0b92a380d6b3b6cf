"""Fixtures for engine tests that must not start real vLLM (see fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.engine.fakes import FakeProfiles, fake_profile


@pytest.fixture
def fake_profiles(tmp_path: Path) -> FakeProfiles:
    """Write a profiles folder holding one fake CPU profile; returns the folder."""

    def _write(mode: str = "ok", pidfile: Path | None = None, name: str = "fake-cpu") -> Path:
        folder = tmp_path / f"profiles-{mode}"
        folder.mkdir(exist_ok=True)
        profile = fake_profile(name, mode, pidfile)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(profile))
        return folder

    return _write
