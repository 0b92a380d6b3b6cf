"""`serving drill` against a real gateway on 127.0.0.1 with fake upstreams, and the admin API."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.cli import main
from serving.gateway.app import create_app
from serving.gateway.drill import Drill, run
from serving.gateway.settings import Settings, parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve

ADMIN_KEY = "drill-admin-key-1"


@dataclass
class Setup:
    url: str
    settings: Settings
    config: dict[str, Any]
    claude: FakeUpstream
    gpt: FakeUpstream
    llama: FakeUpstream


def _config(claude: str, gpt: str, llama: str, *, admin: bool = True) -> dict[str, Any]:
    return {
        "admin": {"enabled": admin, "key_env": "DRILL_TEST_ADMIN_KEY"},
        "upstreams": [
            {"name": "anthropic", "base_url": claude + "/v1", "locality": "hosted"},
            {"name": "openai", "base_url": gpt + "/v1", "locality": "hosted"},
            {"name": "vllm", "base_url": llama + "/v1", "locality": "local"},
        ],
        "routes": [
            {
                "model": "smart",
                "targets": [
                    {"upstream": "anthropic", "model": "claude-3-5-sonnet-20241022"},
                    {"upstream": "openai", "model": "gpt-4o"},
                    {"upstream": "vllm", "model": "llama-3.1-70b"},
                ],
            },
            {
                "model": "cheap",
                "targets": [
                    {"upstream": "openai", "model": "gpt-4o-mini"},
                    {"upstream": "vllm", "model": "llama-3.1-8b"},
                ],
            },
        ],
    }


@pytest.fixture
def setup() -> Iterator[Setup]:
    os.environ["DRILL_TEST_ADMIN_KEY"] = ADMIN_KEY
    fakes = [FakeUpstream([Reply.json(chat_completion(name))]) for name in ("c", "g", "l")]
    try:
        with serve(fakes[0].app) as c, serve(fakes[1].app) as g, serve(fakes[2].app) as ll:
            config = _config(c, g, ll)
            settings = parse_settings(config)
            with serve(create_app(settings)) as url:
                yield Setup(url, settings, config, *fakes)
    finally:
        os.environ.pop("DRILL_TEST_ADMIN_KEY", None)


def test_drill_passes_and_restores_circuits(setup: Setup) -> None:
    out = io.StringIO()
    with httpx.Client(base_url=setup.url, timeout=10) as client:
        code = run(Drill(setup.settings, client, admin_key=ADMIN_KEY), out)
    text = out.getvalue()
    assert code == 0, text
    assert "== anthropic/claude-3-5-sonnet-20241022 forced open" in text
    assert "== openai/gpt-4o forced open" in text
    assert "== openai/gpt-4o-mini forced open" in text
    # With Claude open, "smart" is answered by GPT-4o, in both dialects.
    section = text.split("== anthropic/claude-3-5-sonnet-20241022 forced open")[1].split("==")[0]
    assert section.count("openai/gpt-4o ") == 2
    assert "drill passed" in text
    states = httpx.get(setup.url + "/admin/circuits", headers={"x-admin-key": ADMIN_KEY}).json()
    assert set(states["circuits"].values()) == {"closed"}


def test_drill_fails_when_a_request_fails(setup: Setup) -> None:
    setup.llama.script(Reply.json({"error": {"message": "down"}}, 500))
    setup.gpt.script(Reply.json({"error": {"message": "down"}}, 500))
    out = io.StringIO()
    with httpx.Client(base_url=setup.url, timeout=10) as client:
        code = run(Drill(setup.settings, client, admin_key=ADMIN_KEY), out)
    assert code == 1
    assert "drill FAILED" in out.getvalue()


def test_drill_command_line(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(setup.config))
    assert main(["drill", "--config", str(path), "--gateway", setup.url]) == 0
    assert "drill passed" in capsys.readouterr().out
    bad = ["drill", "--config", str(path), "--gateway", setup.url, "--admin-key", "wrong"]
    assert main(bad) == 2
    assert "401" in capsys.readouterr().err


def test_admin_routes_need_the_admin_key(setup: Setup) -> None:
    target = "/admin/circuits/openai/gpt-4o/open"
    assert httpx.post(setup.url + target).status_code == 401
    assert httpx.post(setup.url + target, headers={"x-admin-key": "nope"}).status_code == 401
    r = httpx.post(setup.url + target, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200 and r.json()["state"] == "open"
    r = httpx.post(setup.url + "/admin/circuits/nope/x/open", headers={"x-admin-key": ADMIN_KEY})
    assert r.status_code == 404


def test_admin_router_is_absent_unless_enabled() -> None:
    fake = FakeUpstream()
    with serve(fake.app) as f:
        settings = parse_settings(_config(f, f, f, admin=False))
        with serve(create_app(settings)) as url:
            assert httpx.get(url + "/admin/circuits").status_code == 404
