"""Fixtures: a scripted fake OpenAI-compatible upstream and a real gateway in front of it.

Import the fixtures into a conftest.py to use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import Settings, parse_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port, serve


@dataclass
class GatewayUnderTest:
    url: str
    settings: Settings
    upstream: FakeUpstream


def gateway_settings(upstream_url: str, dead_port: int) -> Settings:
    return parse_settings(
        {
            "upstreams": [
                {
                    "name": "fake",
                    "dialect": "openai",
                    "base_url": upstream_url + "/v1",
                    "timeouts": {"connect": 1, "first_byte": 5, "total": 10, "stream_idle": 5},
                },
                {
                    "name": "dead",
                    "dialect": "openai",
                    "base_url": f"http://127.0.0.1:{dead_port}/v1",
                    "timeouts": {"connect": 1, "first_byte": 2, "total": 5, "stream_idle": 2},
                },
            ],
            "routes": [
                {
                    "model": "smollm2",
                    "aliases": ["default"],
                    "targets": [{"upstream": "fake", "model": "upstream-model"}],
                },
                {"model": "same-name", "targets": [{"upstream": "fake", "model": "same-name"}]},
                {"model": "unreachable", "targets": [{"upstream": "dead", "model": "m"}]},
                {
                    "model": "with-fallback",
                    "targets": [
                        {"upstream": "dead", "model": "m"},
                        {"upstream": "fake", "model": "upstream-model"},
                    ],
                },
            ],
        },
        "test-config",
    )


@pytest.fixture
def gateway() -> Iterator[GatewayUnderTest]:
    fake = FakeUpstream()
    with serve(fake.app) as upstream_url:
        settings = gateway_settings(upstream_url, free_port())
        with serve(create_app(settings)) as url:
            yield GatewayUnderTest(url, settings, fake)
