"""The config's client-key fields: a bad hash, an unknown model name, a duplicate key name and
a key with no source are config errors naming the field (and never echoing a value)."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway.policy.keys import hash_key
from serving.gateway.settings import ConfigError, parse_settings


def config(*keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"keys": list(keys)},
        "upstreams": [{"name": "up", "base_url": "http://127.0.0.1:1/v1"}],
        "routes": [
            {"model": "chat", "aliases": ["c"], "targets": [{"upstream": "up", "model": "m"}]}
        ],
    }


def test_a_full_key_policy_parses() -> None:
    s = parse_settings(
        config(
            {
                "name": "team",
                "key_hash": hash_key("sk-0123456789abcdefghij"),
                "models": ["c"],
                "requests_per_minute": 10,
                "tokens_per_minute": 1000,
                "monthly_budget_usd": 5.5,
            }
        )
    )
    (key,) = s.server.keys
    assert key.models == ["c"] and key.monthly_budget_usd == 5.5
    assert key.read() == key.key_hash


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ({"key_hash": "sha256$not-hex$abc"}, "server.keys.0.key_hash"),
        ({"key_env": "K", "models": ["nope"]}, "unknown route names ['nope']"),
        ({"name": "x"}, "needs `key_env`, `key_file` or `key_hash`"),
        ({"key_env": "K", "requests_per_minute": 0}, "requests_per_minute"),
        ({"key_env": "K", "monthly_budget_usd": -1}, "monthly_budget_usd"),
    ],
)
def test_bad_key_fields_are_config_errors(key: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(config(key))
    assert message in str(info.value)
    assert "not-hex" not in str(info.value)  # a mistyped hash may be a pasted key


def test_duplicate_key_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate key names: a"):
        parse_settings(config({"name": "a", "key_env": "A"}, {"name": "a", "key_env": "B"}))
