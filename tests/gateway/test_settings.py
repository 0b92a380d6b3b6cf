"""The gateway config: validation messages name the field; the CLI reports without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serving.gateway.settings import ConfigError, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "upstreams": [{"name": "engine", "base_url": "http://127.0.0.1:8001/v1"}],
    "routes": [
        {
            "model": "smollm2",
            "aliases": ["default"],
            "targets": [{"upstream": "engine", "model": "smollm2"}],
        }
    ],
}


def test_shipped_local_example_is_valid() -> None:
    settings = load_settings(REPO / "deploy/examples/local.yaml")
    route = settings.route_for("default")
    assert route is not None and route.model == "smollm2"
    assert settings.upstream(route.targets[0].upstream).base_url == "http://127.0.0.1:8001/v1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"routes": [{"model": "m", "targets": [{"upstream": "nope", "model": "m"}]}]},
            "unknown upstream 'nope'",
        ),
        ({"upstreams": [{"name": "engine", "base_url": "ftp://x"}]}, "upstreams.0.base_url"),
        ({"upstreams": [{"name": "engine"}]}, "needs `base_url`"),
        ({"routes": [{"model": "m", "targets": []}]}, "routes.0.targets"),
        ({"server": {"port": 70000}}, "server.port"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_bad_config_names_the_field(change: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**GOOD, **change}, "cfg.yaml")
    assert "cfg.yaml" in str(info.value) and expected in str(info.value)


def test_duplicate_model_names_are_refused() -> None:
    routes = [
        *GOOD["routes"],
        {
            "model": "default",
            "targets": [{"upstream": "engine", "model": "x"}],
        },
    ]
    with pytest.raises(ConfigError, match="'default' is defined twice"):
        parse_settings({**GOOD, "routes": routes})


def test_api_key_comes_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    upstream = {
        "name": "hosted",
        "base_url": "https://api.example.com/v1",
        "locality": "hosted",
        "api_key_env": "TEST_SERVING_KEY",
        "api_key_file": str(secret),
    }
    settings = parse_settings({**GOOD, "upstreams": [*GOOD["upstreams"], upstream]})
    monkeypatch.delenv("TEST_SERVING_KEY", raising=False)
    assert settings.upstream("hosted").api_key() == "from-file"
    monkeypatch.setenv("TEST_SERVING_KEY", "from-env")
    assert settings.upstream("hosted").api_key() == "from-env"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_config_check_cli(tmp_path: Path) -> None:
    ok = _cli("config", "check", "deploy/examples/local.yaml")
    assert ok.returncode == 0 and "smollm2 (aliases: default): embedded/smollm2" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: []\nroutes: []\n")
    result = _cli("config", "check", str(bad))
    assert result.returncode == 1
    assert "upstreams" in result.stderr and "Traceback" not in result.stderr


def test_gateway_cli_refuses_a_bad_config_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    result = _cli("gateway", "--config", str(bad))
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr and "Traceback" not in result.stderr
