"""Every request is counted once, however it ends, and a client that leaves cancels the upstream.

A known mix of requests (200, 400, 404, 429, 502, 503, client disconnects) must produce exactly
as many `serving_requests_total` increments (and duration observations), each with the status
the client got (499 for a disconnect); a client that goes away mid-request must see the
gateway close its upstream connection within a bounded time.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.gateway.app import create_app
from serving.gateway.runtime import Gateway
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    chat_completion,
    chat_stream,
    openai_error,
)
from tests.support.hanging_upstream import HangingUpstream
from tests.support.servers import free_port, serve

NO_PROBES = {"enabled": False}  # readiness probes would mark the faulty fakes unhealthy
FAST = {"connect": 1, "first_byte": 15, "total": 20, "stream_idle": 15}
CLOSE_WITHIN = 3.0  # seconds from the client leaving to the upstream seeing its connection close


@dataclass
class Setup:
    url: str
    fake: FakeUpstream
    hanging: HangingUpstream
    hanging_stream: HangingUpstream


@pytest.fixture
def setup() -> Iterator[Setup]:
    fake = FakeUpstream()
    with (
        serve(fake.app) as fake_url,
        HangingUpstream().running() as hanging,
        HangingUpstream(stream_first=True).running() as hanging_stream,
    ):

        def up(name: str, url: str) -> dict[str, Any]:
            return {"name": name, "base_url": url + "/v1", "timeouts": FAST, "health": NO_PROBES}

        def route(model: str, upstream: str) -> dict[str, Any]:
            return {"model": model, "targets": [{"upstream": upstream, "model": "m"}]}

        settings = parse_settings(
            {
                "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
                "upstreams": [
                    up("fake", fake_url),
                    up("dead", f"http://127.0.0.1:{free_port()}"),
                    up("hanging", hanging.url),
                    up("hanging-stream", hanging_stream.url),
                ],
                "routes": [
                    route("ok", "fake"),
                    route("down", "dead"),
                    route("hang", "hanging"),
                    route("hang-stream", "hanging-stream"),
                ],
            },
            "accounting",
        )
        with serve(create_app(settings)) as url:
            yield Setup(url, fake, hanging, hanging_stream)


def chat(url: str, model: str, **kw: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=10)


def leave_mid_request(url: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.5))


def leave_mid_stream(url: str, model: str, dialect: str) -> None:
    messages = [{"role": "user", "content": "hi"}]
    body: dict[str, object]
    if dialect == "openai":
        path, body = "/v1/chat/completions", {"model": model, "messages": messages}
    else:
        path = "/v1/messages"
        body = {"model": model, "max_tokens": 8, "messages": messages}
    with httpx.stream("POST", url + path, json={**body, "stream": True}, timeout=10) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # the first frame arrived; now the client goes away


def requests_by_label(url: str) -> tuple[Counter[tuple[str, ...]], float]:
    """serving_requests_total by (route, dialect, status), and the duration histogram's count."""
    text = httpx.get(url + "/metrics").text
    counts: Counter[tuple[str, ...]] = Counter()
    durations = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "serving_requests_total":
                labels = sample.labels
                counts[(labels["route"], labels["dialect"], labels["status"])] += int(sample.value)
            elif sample.name == "serving_request_duration_seconds_count":
                durations += sample.value
    return counts, durations


def wait_for_count(url: str, n: int, within: float = 5.0) -> tuple[Counter[tuple[str, ...]], float]:
    deadline = time.monotonic() + within
    while True:
        counts, durations = requests_by_label(url)
        if sum(counts.values()) >= n or time.monotonic() > deadline:
            return counts, durations
        time.sleep(0.05)


def test_every_request_is_counted_once_with_its_status(setup: Setup) -> None:
    url, fake = setup.url, setup.fake
    fake.script(Reply.json(chat_completion("hi")))
    assert chat(url, "ok").status_code == 200
    fake.script(Reply.sse(chat_stream(("a", "b"))))
    assert chat(url, "ok", stream=True).status_code == 200
    bad = httpx.post(url + "/v1/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400
    assert chat(url, "no-such-model").status_code == 404
    fake.script(openai_error(429, "slow down", "rate_limit_error"))
    assert chat(url, "ok").status_code == 429
    fake.script(Reply.json(b"{garbled", content_type="application/json"))
    assert chat(url, "ok").status_code == 502
    assert chat(url, "down").status_code == 503
    unknown = httpx.post(url + "/v1/messages", json={"model": "nope"}, timeout=10)
    assert unknown.status_code == 400  # max_tokens and messages are missing
    leave_mid_request(url, "hang")
    leave_mid_stream(url, "hang-stream", "openai")

    n = 10
    counts, durations = wait_for_count(url, n)
    assert sum(counts.values()) == n, counts
    assert durations == n
    assert counts == Counter(
        {
            ("ok", "openai", "200"): 2,
            ("unknown", "openai", "400"): 1,
            ("unknown", "openai", "404"): 1,
            ("ok", "openai", "429"): 1,
            ("ok", "openai", "502"): 1,
            ("down", "openai", "503"): 1,
            ("unknown", "anthropic", "400"): 1,
            ("hang", "openai", "499"): 1,
            ("hang-stream", "openai", "499"): 1,
        }
    )
    # Probes are not API traffic: scraping /metrics above did not count itself.
    assert not any(route == "metrics" for route, _, _ in counts)


@pytest.mark.parametrize(
    ("kind", "dialect"),
    [("whole", "openai"), ("stream", "openai"), ("stream", "anthropic")],
)
def test_a_client_that_leaves_cancels_the_upstream_call(
    setup: Setup, kind: str, dialect: str
) -> None:
    if kind == "whole":
        upstream, route = setup.hanging, "hang"
        leave_mid_request(setup.url, route)
    else:
        upstream, route = setup.hanging_stream, "hang-stream"
        leave_mid_stream(setup.url, route, dialect)
    assert upstream.requests == 1
    assert upstream.wait_closed(1, within=CLOSE_WITHIN), "the upstream call ran on"
    counts, _ = wait_for_count(setup.url, 1)
    assert counts == Counter({(route, dialect, "499"): 1})


@pytest.mark.parametrize(
    ("dialect", "path", "body"),
    [
        (
            "openai",
            "/v1/chat/completions",
            {"model": "ok", "messages": [{"role": "user", "content": "x"}]},
        ),
        (
            "anthropic",
            "/v1/messages",
            {"model": "ok", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]},
        ),
        ("gemini", "/v1beta/models/ok:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}),
    ],
)
def test_a_bug_in_the_gateway_is_the_dialects_500_and_counted(
    dialect: str, path: str, body: dict[str, Any]
) -> None:
    """The last safety net: an exception no handler knows becomes a JSON 500 in the path's
    dialect with its request id, and the request is still counted once."""
    settings = parse_settings(
        {
            "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
            "routes": [{"model": "ok", "targets": [{"upstream": "u", "model": "m"}]}],
        },
        "catch-all",
    )
    gateway = Gateway(settings)

    async def broken(*_: Any, **__: Any) -> Any:
        raise ZeroDivisionError("a bug")

    gateway.dispatcher.dispatch = broken  # type: ignore[method-assign]
    with serve(create_app(settings, gateway)) as url:
        response = httpx.post(url + path, json=body, timeout=10)
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("application/json")
        payload = response.json()
        rid = response.headers["request-id" if dialect == "anthropic" else "x-request-id"]
        assert rid in json.dumps(payload)  # the message names the request id to report
        assert "a bug" not in json.dumps(payload)  # internals stay in the log
        counts, _ = wait_for_count(url, 1)
    assert counts == Counter({("ok", dialect, "500"): 1})
