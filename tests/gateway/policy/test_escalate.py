"""Complexity routing: a declared rule sends long or tool-using requests to another chain."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import ConfigError, parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve


def _config(small: str, big: str, **escalate: Any) -> dict[str, Any]:
    return {
        "upstreams": [
            {"name": "small", "base_url": small + "/v1"},
            {"name": "big", "base_url": big + "/v1", "locality": "hosted"},
        ],
        "routes": [
            {
                "model": "auto",
                "targets": [{"upstream": "small", "model": "llama-8b"}],
                "escalate": {"to": "complex", **escalate},
            },
            {"model": "complex", "targets": [{"upstream": "big", "model": "gpt-4o"}]},
        ],
    }


@pytest.mark.parametrize(
    ("content", "tools", "expected"),
    [
        ("short question", False, "small/llama-8b"),
        ("long " * 200, False, "big/gpt-4o"),
        ("short question", True, "big/gpt-4o"),
    ],
)
def test_escalation_rules(content: str, tools: bool, expected: str) -> None:
    small = FakeUpstream([Reply.json(chat_completion("small"))])
    big = FakeUpstream([Reply.json(chat_completion("big"))])
    with serve(small.app) as s, serve(big.app) as b:
        settings = parse_settings(_config(s, b, min_prompt_tokens=200, tools=True))
        with serve(create_app(settings)) as url:
            body: dict[str, Any] = {
                "model": "auto",
                "messages": [{"role": "user", "content": content}],
            }
            if tools:
                body["tools"] = [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object"}},
                    }
                ]
            r = httpx.post(url + "/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            assert r.headers["x-serving-target"] == expected
            escalated = expected.startswith("big")
            assert r.headers.get("x-serving-route") == ("complex" if escalated else None)


def test_escalation_must_name_another_route() -> None:
    with pytest.raises(ConfigError, match=r"escalate\.to"):
        parse_settings(_config("http://a", "http://b", to="nowhere"))
    config = _config("http://a", "http://b")
    config["routes"][0]["escalate"]["to"] = "auto"
    with pytest.raises(ConfigError, match="not another route"):
        parse_settings(config)
