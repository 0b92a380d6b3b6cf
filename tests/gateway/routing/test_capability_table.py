"""Where a target's capabilities come from: its own declaration, the catalog profile of a
local model, the hosted table (exact name, else longest prefix), else unknown (able)."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway.policy.capabilities import CapabilityTable, load_table
from serving.gateway.settings import ConfigError, parse_settings


def _table(targets: list[dict[str, Any]]) -> tuple[CapabilityTable, Any]:
    settings = parse_settings(
        {
            "upstreams": [
                {"name": "local", "base_url": "http://127.0.0.1:9/v1"},
                {"name": "cloud", "base_url": "https://example.invalid/v1", "locality": "hosted"},
            ],
            "routes": [{"model": "r", "targets": targets}],
        }
    )
    return CapabilityTable(settings, load_table()), settings.routes[0].targets


def test_profiles_tables_and_declarations() -> None:
    table, targets = _table(
        [
            {"upstream": "local", "model": "llama-3.1-8b"},
            {"upstream": "local", "model": "mixtral-8x7b"},
            {"upstream": "cloud", "model": "gpt-4o-2024-08-06"},
            {"upstream": "cloud", "model": "claude-3-5-sonnet-20241022"},
            {"upstream": "cloud", "model": "someone-elses-model"},
            {"upstream": "cloud", "model": "gpt-4o-mini", "capabilities": {"tools": False}},
        ]
    )
    llama, mixtral, gpt4o, sonnet, unknown, mini = (table.of(t) for t in targets)
    assert llama.lacks == {"vision", "audio"} and llama.context_window == 32768
    assert llama.source == "profile:llama-3.1-8b"
    assert "tools" in mixtral.lacks  # its profile has no tool-call parser
    assert gpt4o.source == "table:gpt-4o" and gpt4o.lacks == {"audio"}
    assert gpt4o.context_window == 128000
    assert sonnet.lacks == {"audio", "json_schema"} and sonnet.context_window == 200000
    assert unknown.lacks == frozenset() and unknown.source == "unknown"
    assert mini.lacks == {"tools", "audio"} and mini.source == "target+table:gpt-4o-mini"
    assert table.missing(targets[0], {"vision", "tools"}) == ["vision"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "x", "to": "nowhere"}, "not another route"),
        ({"name": "x", "to": "r"}, "not another route"),
        ({"name": "Bad Name", "to": "s"}, "rules.0.name"),
    ],
)
def test_rules_are_checked_when_the_config_loads(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(
            {
                "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
                "routes": [
                    {"model": "r", "targets": [{"upstream": "u", "model": "m"}], "rules": [rule]},
                    {"model": "s", "targets": [{"upstream": "u", "model": "m"}]},
                ],
            }
        )
