"""The fault matrix: every upstream fault, through the official SDKs (max_retries=0), in the
OpenAI and Anthropic dialects, streamed and not. Each fault must give the right fallback or the
right dialect-native error; a stream cut after the first byte must reach the client as an error.

All upstreams are OpenAI-compatible fakes on 127.0.0.1; `primary` is marked hosted (it stands
for Claude in the seed pattern) and `backup` answers "from backup" so the answering target shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import Message, RawContentBlockDeltaEvent, TextBlock, TextDelta
from openai.types.chat import ChatCompletion

from serving.gateway.app import create_app
from serving.gateway.settings import DEFAULT_RETRY_ON, parse_settings
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    chat_completion,
    chat_stream,
    openai_error,
)
from tests.support.raw_upstream import ResettingUpstream
from tests.support.servers import free_port, serve

FAST = {"connect": 0.5, "first_byte": 0.5, "total": 2, "stream_idle": 0.5}
PRIMARY = "primary/claude-3-5-sonnet-20241022"
BACKUP = "backup/llama-3.1-8b"


@dataclass
class Matrix:
    url: str
    primary: FakeUpstream
    backup: FakeUpstream
    reset: ResettingUpstream

    def script(self, primary: list[Reply], stream: bool) -> None:
        self.primary.script(*primary)
        self.primary.requests.clear()
        self.backup.script(ok("from backup", stream))
        self.backup.requests.clear()


def ok(text: str, stream: bool, **kw: Any) -> Reply:
    if stream:
        return Reply.sse(chat_stream((text[:5], text[5:])), **kw)
    return Reply.json(chat_completion(text), **kw)


def config(primary: str, backup: str, reset: str, dead: int) -> dict[str, Any]:
    def up(name: str, url: str) -> dict[str, Any]:
        return {"name": name, "base_url": url + "/v1", "locality": "hosted", "timeouts": FAST}

    def chain(first: str, model: str = "claude-3-5-sonnet-20241022") -> list[dict[str, Any]]:
        return [
            {"upstream": first, "model": model},
            {"upstream": "backup", "model": "llama-3.1-8b"},
        ]

    return {
        "policy": {
            "retry": {
                "attempts": 1,
                "backoff_base": 0.01,
                "backoff_max": 0.02,
                "retry_after_cap": 0.5,
            },
            "circuit": {"enabled": False},  # the matrix repeats faults; breakers have own tests
        },
        "upstreams": [
            up("primary", primary),
            {**up("backup", backup), "locality": "local"},
            up("refused", f"http://127.0.0.1:{dead}"),
            up("reset", reset),
        ],
        "routes": [
            {"model": "chat", "targets": chain("primary")},
            {  # a break mid-answer ends the stream (test_stream_continuation.py: continued)
                "model": "chat-whole",
                "targets": chain("primary"),
                "continuation": {"enabled": False},
            },
            {"model": "refused-chat", "targets": chain("refused")},
            {"model": "reset-chat", "targets": chain("reset")},
            {"model": "solo", "targets": [{"upstream": "primary", "model": "m"}]},
            {
                "model": "long",
                "targets": [
                    {"upstream": "primary", "model": "short-ctx", "context_window": 200},
                    {"upstream": "backup", "model": "long-ctx", "context_window": 100000},
                ],
            },
            {
                "model": "tiny",
                "targets": [
                    {"upstream": "primary", "model": "a", "context_window": 100},
                    {"upstream": "backup", "model": "b", "context_window": 150},
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    primary, backup = FakeUpstream(), FakeUpstream()
    with (
        serve(primary.app) as p_url,
        serve(backup.app) as b_url,
        ResettingUpstream().running() as reset,
    ):
        settings = parse_settings(config(p_url, b_url, reset.url, free_port()), "matrix")
        with serve(create_app(settings)) as url:
            yield Matrix(url, primary, backup, reset)


@dataclass
class Answer:
    text: str
    headers: Any


def ask(m: Matrix, dialect: str, stream: bool, model: str = "chat", prompt: str = "hi") -> Answer:
    if dialect == "openai":
        oc = openai.OpenAI(base_url=m.url + "/v1", api_key="k", max_retries=0, timeout=10)
        raw = oc.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=16,
            stream=stream,
        )
        parsed = raw.parse()
        if stream:
            assert isinstance(parsed, openai.Stream)
            text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
        else:
            assert isinstance(parsed, ChatCompletion)
            text = parsed.choices[0].message.content or ""
        return Answer(text, raw.headers)
    ac = anthropic.Anthropic(base_url=m.url, api_key="k", max_retries=0, timeout=10)
    araw = ac.messages.with_raw_response.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": prompt}], stream=stream
    )
    aparsed = araw.parse()
    if stream:
        assert isinstance(aparsed, anthropic.Stream)
        parts = [
            e.delta.text
            for e in aparsed
            if isinstance(e, RawContentBlockDeltaEvent) and isinstance(e.delta, TextDelta)
        ]
        return Answer("".join(parts), araw.headers)
    assert isinstance(aparsed, Message)
    blocks = aparsed.content
    return Answer("".join(b.text for b in blocks if isinstance(b, TextBlock)), araw.headers)


DIALECTS = [("openai", False), ("openai", True), ("anthropic", False), ("anthropic", True)]
IDS = ["openai", "openai-stream", "anthropic", "anthropic-stream"]


def _fault(name: str, stream: bool) -> tuple[list[Reply], str]:
    """The primary's script for a fault, and the fallback reason it must produce."""
    faults: dict[str, tuple[list[Reply], str]] = {
        "500": ([openai_error(500, "boom", "server_error")], "server_error"),
        "502": ([openai_error(502, "bad gateway", "server_error")], "server_error"),
        "503": ([openai_error(503, "unavailable", "server_error")], "server_error"),
        "529": ([openai_error(529, "overloaded", "overloaded_error")], "overloaded"),
        "429-retry-after-over-cap": (
            [Reply.json({"error": {"message": "slow down"}}, 429, headers={"retry-after": "30"})],
            "rate_limited",
        ),
        "timeout-before-first-byte": ([ok("too late", stream, delay=1.5)], "timeout"),
        "malformed-json": (
            [
                Reply.sse([b"data: {not json\n\n"])
                if stream
                else Reply.json(b'{"id": "x", "choices": [')
            ],
            "server_error",
        ),
        "wrong-content-type": (
            [Reply.json(b"<html>busy</html>", content_type="text/html")],
            "server_error",
        ),
        "context-overflow": (
            [
                openai_error(
                    400,
                    "This model's maximum context length is 8192 tokens. However,"
                    " you requested 9000 tokens.",
                )
            ],
            "context_window",
        ),
        "upstream-unknown-model": (
            [openai_error(404, "The model does not exist", "not_found_error")],
            "not_found",
        ),
        "bad-upstream-key": (
            [openai_error(401, "Incorrect API key provided", "authentication_error")],
            "upstream_auth",
        ),
    }
    return faults[name]


FAULTS = [
    "500",
    "502",
    "503",
    "529",
    "429-retry-after-over-cap",
    "timeout-before-first-byte",
    "malformed-json",
    "wrong-content-type",
    "context-overflow",
    "upstream-unknown-model",
    "bad-upstream-key",
]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_fault_falls_back_to_the_next_target(
    matrix: Matrix, fault: str, dialect: str, stream: bool
) -> None:
    script, reason = _fault(fault, stream)
    matrix.script(script, stream)
    answer = ask(matrix, dialect, stream)
    assert answer.text == "from backup"
    assert answer.headers["x-serving-target"] == BACKUP
    assert f"{PRIMARY}:{reason}" in answer.headers["x-serving-fallback"]
    assert len(matrix.backup.requests) == 1
    # Retried once (policy.retry.attempts = 1) when the reason is retryable; a retry-after over
    # the cap is not waited for: the chain moves on at once.
    retried = reason in DEFAULT_RETRY_ON and fault != "429-retry-after-over-cap"
    assert len(matrix.primary.requests) == (2 if retried else 1)


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
@pytest.mark.parametrize(("route", "reason"), [("refused-chat", "connect"), ("reset-chat", None)])
def test_connection_faults_fall_back(
    matrix: Matrix, route: str, reason: str | None, dialect: str, stream: bool
) -> None:
    matrix.script([ok("unused", stream)], stream)
    before = matrix.reset.connections
    answer = ask(matrix, dialect, stream, model=route)
    assert answer.text == "from backup"
    assert answer.headers["x-serving-target"] == BACKUP
    first = route.split("-")[0]
    fallback = answer.headers["x-serving-fallback"]
    assert fallback.startswith(f"{first}/claude-3-5-sonnet-20241022:")
    if reason is not None:
        assert fallback.endswith(f":{reason}")
    else:  # a reset after the request was sent: counted, retried once, then moved on
        assert matrix.reset.connections - before in (1, 2)


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_retry_after_within_the_cap_retries_the_same_target(
    matrix: Matrix, dialect: str, stream: bool
) -> None:
    limited = Reply.json({"error": {"message": "slow"}}, 429, headers={"retry-after-ms": "50"})
    matrix.script([limited, ok("from primary", stream)], stream)
    started = time.perf_counter()
    answer = ask(matrix, dialect, stream)
    assert answer.text == "from primary"
    assert answer.headers["x-serving-target"] == PRIMARY
    assert len(matrix.primary.requests) == 2 and not matrix.backup.requests
    assert time.perf_counter() - started >= 0.05  # the upstream's retry-after was honoured


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_slow_first_byte_within_the_timeout_is_served(
    matrix: Matrix, dialect: str, stream: bool
) -> None:
    matrix.script([ok("from primary", stream, delay=0.2)], stream)
    answer = ask(matrix, dialect, stream)
    assert answer.text == "from primary"
    assert "x-serving-fallback" not in answer.headers
    assert not matrix.backup.requests


def _mid_stream(fault: str) -> Reply:
    frames = chat_stream(("one ", "two ", "three ", "four"))
    return {
        "cut": Reply.sse(frames, cut_after=3),
        "stall-longer-than-stream-idle": Reply.sse(frames, stall_after=3, stall_for=1.0),
        "ends-without-finishing": Reply.sse(frames[:3]),  # a clean EOF, no finish, no [DONE]
        "longer-than-total": Reply.sse(  # ~2.8 s of steady chunks > total 2 s
            chat_stream(("one ", *(f"w{i} " for i in range(25)))), frame_delay=0.1
        ),
    }[fault]


MID_STREAM = ["cut", "stall-longer-than-stream-idle", "ends-without-finishing", "longer-than-total"]


@pytest.mark.parametrize("fault", MID_STREAM)
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_mid_stream_failure_reaches_the_client_as_an_error(
    matrix: Matrix, dialect: str, fault: str
) -> None:
    matrix.script([_mid_stream(fault)], True)
    received: list[str] = []
    error: type[Exception] = openai.APIError if dialect == "openai" else anthropic.APIError
    with pytest.raises(error) as info:
        if dialect == "openai":
            oc = openai.OpenAI(base_url=matrix.url + "/v1", api_key="k", max_retries=0)
            for chunk in oc.chat.completions.create(
                model="chat-whole", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                received += [chunk.choices[0].delta.content or ""] if chunk.choices else []
        else:
            ac = anthropic.Anthropic(base_url=matrix.url, api_key="k", max_retries=0)
            with ac.messages.stream(
                model="chat-whole", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            ) as s:
                for text in s.text_stream:
                    received.append(text)
    assert "stream" in str(info.value) or "upstream" in str(info.value)
    assert "".join(received).startswith("one ")  # the failure came after the first byte
    assert not matrix.backup.requests  # continuation is off: no failover after the first byte


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_client_errors_go_back_without_fallback(matrix: Matrix, dialect: str, stream: bool) -> None:
    matrix.script([openai_error(400, "temperature: must be at most 2")], stream)
    error = openai.BadRequestError if dialect == "openai" else anthropic.BadRequestError
    with pytest.raises(error) as info:
        ask(matrix, dialect, stream)
    assert isinstance(info.value, (openai.APIStatusError, anthropic.APIStatusError))
    assert info.value.status_code == 400
    assert "temperature" in info.value.message
    assert not matrix.backup.requests


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_unknown_model_is_dialect_native_not_found(
    matrix: Matrix, dialect: str, stream: bool
) -> None:
    matrix.script([ok("unused", stream)], stream)
    error = openai.NotFoundError if dialect == "openai" else anthropic.NotFoundError
    with pytest.raises(error) as info:
        ask(matrix, dialect, stream, model="no-such-model")
    assert isinstance(info.value, (openai.APIStatusError, anthropic.APIStatusError))
    assert "no-such-model" in info.value.message
    assert not matrix.primary.requests and not matrix.backup.requests


@pytest.mark.parametrize(
    ("status", "openai_cls", "anthropic_cls", "anthropic_type"),
    [
        (529, openai.InternalServerError, anthropic.APIStatusError, "overloaded_error"),
        (503, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
        (429, openai.RateLimitError, anthropic.RateLimitError, "rate_limit_error"),
        # The upstream refused the gateway's key, not the client's: a 502 naming the upstream.
        (401, openai.InternalServerError, anthropic.InternalServerError, "api_error"),
    ],
)
@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_single_target_failure_is_the_dialect_native_error(
    matrix: Matrix,
    dialect: str,
    stream: bool,
    status: int,
    openai_cls: type[openai.APIStatusError],
    anthropic_cls: type[anthropic.APIStatusError],
    anthropic_type: str,
) -> None:
    headers = {"retry-after": "30"} if status == 429 else {}
    reply = Reply.json({"error": {"message": f"upstream said {status}"}}, status, headers=headers)
    matrix.script([reply], stream)
    expected = 502 if status == 401 else status
    if dialect == "openai":
        with pytest.raises(openai_cls) as info:
            ask(matrix, dialect, stream, model="solo")
        assert info.value.status_code == expected
        message = info.value.message
    else:
        with pytest.raises(anthropic_cls) as ainfo:
            ask(matrix, dialect, stream, model="solo")
        assert ainfo.value.status_code == expected
        body = ainfo.value.body
        assert isinstance(body, dict)
        assert body["error"]["type"] == anthropic_type
        message = ainfo.value.message
    # The gateway's own words, naming the upstream; none of the upstream's text.
    assert "'primary'" in message and "upstream said" not in message
    if status == 429:
        assert len(matrix.primary.requests) == 1  # retry-after 30 s is over the cap: not waited


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_long_prompt_skips_the_short_context_target_without_an_attempt(
    matrix: Matrix, dialect: str, stream: bool
) -> None:
    matrix.script([ok("unused", stream)], stream)
    answer = ask(matrix, dialect, stream, model="long", prompt="word " * 400)
    assert answer.text == "from backup"
    assert answer.headers["x-serving-fallback"] == "primary/short-ctx:context_window"
    assert not matrix.primary.requests


@pytest.mark.parametrize(("dialect", "stream"), DIALECTS, ids=IDS)
def test_prompt_too_long_for_every_target_is_a_400(
    matrix: Matrix, dialect: str, stream: bool
) -> None:
    matrix.script([ok("unused", stream)], stream)
    error = openai.BadRequestError if dialect == "openai" else anthropic.BadRequestError
    with pytest.raises(error) as info:
        ask(matrix, dialect, stream, model="tiny", prompt="word " * 400)
    assert isinstance(info.value, (openai.APIStatusError, anthropic.APIStatusError))
    assert "does not fit" in info.value.message
    assert not matrix.primary.requests and not matrix.backup.requests
