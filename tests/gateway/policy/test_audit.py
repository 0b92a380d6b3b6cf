"""`serving config check` warnings, and the shipped example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.cli import main
from serving.gateway.policy.audit import config_warnings
from serving.gateway.runtime import Gateway
from serving.gateway.settings import ConfigError, load_settings, parse_settings

EXAMPLES = Path(__file__).parents[3] / "deploy" / "examples"


def test_route_without_local_target_is_warned_about() -> None:
    s = parse_settings(
        {
            "upstreams": [
                {
                    "name": "openai",
                    "base_url": "https://api.openai.com/v1",
                    "locality": "hosted",
                    "api_key_env": "X",
                }
            ],
            "routes": [{"model": "gpt", "targets": [{"upstream": "openai", "model": "gpt-4o"}]}],
        }
    )
    warnings = config_warnings(s, check_env=False)
    assert any("no local target" in w and "PrivacyBlocked" in w for w in warnings)


def test_unknown_price_and_partial_context_windows_are_warned_about() -> None:
    s = parse_settings(
        {
            "upstreams": [
                {"name": "h", "base_url": "https://h/v1", "locality": "hosted", "api_key_env": "X"},
                {"name": "l", "base_url": "http://l/v1"},
            ],
            "routes": [
                {
                    "model": "r",
                    "targets": [
                        {"upstream": "h", "model": "mystery-model", "context_window": 1000},
                        {"upstream": "l", "model": "m"},
                    ],
                }
            ],
        }
    )
    warnings = config_warnings(s, check_env=False)
    assert any("h/mystery-model: no price known" in w for w in warnings)
    assert any("no context_window" in w for w in warnings)
    assert not any("no local target" in w for w in warnings)


def test_missing_secrets_are_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIT_TEST_KEY", raising=False)
    s = parse_settings(
        {
            "upstreams": [
                {
                    "name": "h",
                    "base_url": "https://h/v1",
                    "locality": "hosted",
                    "api_key_env": "AUDIT_TEST_KEY",
                }
            ],
            "routes": [{"model": "r", "targets": [{"upstream": "h", "model": "gpt-4o"}]}],
            "admin": {"enabled": True, "key_env": "AUDIT_TEST_ADMIN"},
        }
    )
    warnings = config_warnings(s)
    assert any("AUDIT_TEST_KEY" in w for w in warnings)
    assert any(w.startswith("admin:") for w in warnings)


def test_admin_without_a_key_source_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"admin\.enabled needs admin\.key_env"):
        parse_settings(
            {
                "upstreams": [{"name": "l", "base_url": "http://l/v1"}],
                "routes": [{"model": "r", "targets": [{"upstream": "l", "model": "m"}]}],
                "admin": {"enabled": True},
            }
        )


@pytest.mark.parametrize("name", ["local.yaml", "fallback.yaml"])
def test_example_configs_are_valid_and_build(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(EXAMPLES / name)
    Gateway(settings)  # every policy object builds from it
    assert main(["config", "check", str(EXAMPLES / name)]) == 0
    assert "ok" in capsys.readouterr().out


def test_limits_without_a_shared_store_are_warned_about() -> None:
    data: dict[str, object] = {
        "server": {
            "keys": [
                {
                    "name": "team",
                    "key_hash": "sha256$" + "00" * 16 + "$" + "11" * 32,
                    "requests_per_minute": 5,
                },
                {"name": "open", "key_env": "OPEN_KEY"},
            ]
        },
        "upstreams": [{"name": "local", "base_url": "http://127.0.0.1:1/v1"}],
        "routes": [{"model": "m", "targets": [{"upstream": "local", "model": "m"}]}],
    }
    warnings = config_warnings(parse_settings(data), check_env=False)
    assert any("server.keys team: limits are counted in this process only" in w for w in warnings)
    assert not any("open" in w for w in warnings)
    shared = parse_settings({**data, "state": {"redis_url": "redis://127.0.0.1:1/0"}})
    assert not any("counted in this process" in w for w in config_warnings(shared, check_env=False))
