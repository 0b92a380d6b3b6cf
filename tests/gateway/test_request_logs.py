"""Request ids and logs: an id header in every dialect's responses, the id in every log line of
that request, and one JSON access line per request with no content and no keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.logs import JSONFormatter, RequestIdFilter
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import free_port, serve

SECRET_PROMPT = "my-very-private-prompt-text"
CLIENT_KEY = "sk-client-key-never-logged-0123456789"


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, FakeUpstream, io.StringIO]]:
    fake = FakeUpstream()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RequestIdFilter())
    gateway_logger = logging.getLogger("serving.gateway")
    gateway_logger.addHandler(handler)
    old_level = gateway_logger.level
    gateway_logger.setLevel(logging.DEBUG)
    monkeypatch.setenv("TEST_CLIENT_KEYS", CLIENT_KEY)
    try:
        with serve(fake.app) as up:
            settings = parse_settings(
                {
                    "server": {"api_keys_env": "TEST_CLIENT_KEYS"},
                    "privacy": {"detect": False},
                    "upstreams": [
                        {
                            "name": "dead",
                            "base_url": f"http://127.0.0.1:{free_port()}/v1",
                            "health": {"enabled": False},
                        },
                        {"name": "fake", "base_url": up + "/v1"},
                    ],
                    "routes": [
                        {
                            "model": "chat",
                            "targets": [
                                {"upstream": "dead", "model": "m"},
                                {"upstream": "fake", "model": "m"},
                            ],
                        }
                    ],
                },
                "logs",
            )
            with serve(create_app(settings)) as url:
                yield url, fake, out
    finally:
        gateway_logger.removeHandler(handler)
        gateway_logger.setLevel(old_level)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_ids_logs_and_one_access_line_per_request(
    logged: tuple[str, FakeUpstream, io.StringIO],
) -> None:
    url, fake, out = logged
    fake.script(Reply.json(chat_completion("hi", prompt_tokens=9, completion_tokens=2)))
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    body = {"model": "chat", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    ok = httpx.post(url + "/v1/chat/completions", json=body, headers=auth, timeout=10)
    assert ok.status_code == 200
    anthropic = httpx.post(
        url + "/v1/messages",
        json={**body, "max_tokens": 4},
        headers={"x-api-key": CLIENT_KEY},
        timeout=10,
    )
    assert anthropic.status_code == 200
    gemini = httpx.post(
        url + "/v1beta/models/nope:generateContent",
        json={"contents": [{"parts": [{"text": SECRET_PROMPT}]}]},
        headers={"x-goog-api-key": CLIENT_KEY},
        timeout=10,
    )
    assert gemini.status_code == 404
    ids = [
        ok.headers["x-request-id"],
        anthropic.headers["request-id"],
        gemini.headers["x-request-id"],
    ]
    assert len(set(ids)) == 3 and all(i.startswith("req_") for i in ids)

    records = lines(out)
    access = [r for r in records if r["logger"] == "serving.gateway.access"]
    assert [a["request_id"] for a in access] == ids  # one line per request, in order
    first = access[0]
    assert first["route"] == "chat" and first["target"] == "fake/m" and first["status"] == 200
    assert first["fallbacks"] == ["dead/m:connect"] and first["dialect"] == "openai"
    assert first["input_tokens"] == 9 and first["output_tokens"] == 2
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] > 0
    assert access[2]["status"] == 404 and access[2]["route"] == "unknown"
    # Every line written while a request ran carries its id (the fallback's debug lines too).
    during = [r for r in records if r["logger"] == "serving.gateway.dispatch"]
    assert during and all(r.get("request_id") in ids for r in during)
    text = out.getvalue()
    assert SECRET_PROMPT not in text and CLIENT_KEY not in text
