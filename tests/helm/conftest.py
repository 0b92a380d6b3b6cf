"""Fixtures for the chart tests: one session-wide renderer, so each example renders once."""

from __future__ import annotations

import pytest

from tests.helm.chartkit import Renderer, require_helm


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return require_helm()


@pytest.fixture(scope="session")
def chart(helm_bin: str) -> Renderer:
    return Renderer()
