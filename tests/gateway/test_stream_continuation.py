"""Streams that survive failure, through the official SDKs of all three client dialects.

Each client dialect has a same-dialect primary (its stream is relayed byte for byte) in front of
`backup`, a vLLM-like OpenAI-compatible fake that accepts assistant prefill, and `rejecting`,
one that refuses prefill with a 400. The primary's answer is 60 words; the faults break it after
40 of them. Time limits are small (first token 1 s, stream idle 1 s) to keep this fast, except
on `p5-*`, the same primaries with the issue's `first_byte: 5`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    anthropic_stream,
    chat_stream,
    gemini_stream,
    openai_error,
)
from tests.support.servers import serve

DIALECTS = ["openai", "anthropic", "gemini"]
WORDS = [f"w{i} " for i in range(60)]
ANSWER = "".join(WORDS)
FAST = {"connect": 1, "first_byte": 1, "total": 10, "stream_idle": 1}
SLOW_TOKEN = {"connect": 1, "first_byte": 5, "total": 60, "stream_idle": 10}
_BASE = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
PREFILL_REJECTED = (
    "This model does not support assistant message prefill. The conversation must end with a"
    " user message."
)


@dataclass
class Rig:
    url: str
    primaries: dict[str, FakeUpstream]
    backup: FakeUpstream
    rejecting: FakeUpstream

    def script(self, dialect: str, primary: Reply, backup: Reply | None = None) -> None:
        self.primaries[dialect].script(primary)
        self.primaries[dialect].requests.clear()
        self.backup.script(backup or Reply.sse(chat_stream(WORDS[40:], prompt_tokens=11)))
        self.backup.requests.clear()
        self.rejecting.script(openai_error(400, PREFILL_REJECTED))
        self.rejecting.requests.clear()


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    primaries = {d: FakeUpstream() for d in DIALECTS}
    backup, rejecting = FakeUpstream(), FakeUpstream()
    with (
        serve(primaries["openai"].app) as o_url,
        serve(primaries["anthropic"].app) as a_url,
        serve(primaries["gemini"].app) as g_url,
        serve(backup.app) as b_url,
        serve(rejecting.app) as r_url,
    ):
        urls = {"openai": o_url, "anthropic": a_url, "gemini": g_url}
        upstreams: list[dict[str, Any]] = [
            {
                "name": f"p-{d}",
                "dialect": d,
                "base_url": urls[d] + _BASE[d],
                "locality": "hosted",
                "timeouts": FAST,
            }
            for d in DIALECTS
        ]
        upstreams += [
            {
                "name": f"p5-{d}",
                "dialect": d,
                "base_url": urls[d] + _BASE[d],
                "locality": "hosted",
                "timeouts": SLOW_TOKEN,
            }
            for d in DIALECTS
        ]
        upstreams += [
            {"name": "backup", "base_url": b_url + "/v1", "timeouts": FAST},
            # declared able to continue (as a misconfigured target would be); it refuses
            {"name": "rejecting", "base_url": r_url + "/v1", "timeouts": FAST},
        ]
        routes: list[dict[str, Any]] = []
        for d in DIALECTS:
            first = {"upstream": f"p-{d}", "model": "m"}
            translated = {"upstream": "p-openai", "model": "m"}  # canonical events, not bytes
            routes += [
                {"model": f"{d}-chat", "targets": [first, {"upstream": "backup", "model": "b"}]},
                {
                    "model": f"{d}-fb5",
                    "targets": [
                        {"upstream": f"p5-{d}", "model": "m"},
                        {"upstream": "backup", "model": "b"},
                    ],
                },
                {"model": f"{d}-x", "targets": [translated, {"upstream": "backup", "model": "b"}]},
                {
                    "model": f"{d}-reject",
                    "targets": [
                        first,
                        {"upstream": "rejecting", "model": "r", "continuation": "prefill"},
                    ],
                },
            ]
        settings = parse_settings(
            {
                "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
                "upstreams": upstreams,
                "routes": routes,
            },
            "continuation-test",
        )
        with serve(create_app(settings)) as url:
            yield Rig(url, primaries, backup, rejecting)


# ---- the primary's 60-word answer, in each dialect, and its faults -----------------------------


def answer_frames(dialect: str) -> tuple[list[bytes], int]:
    """The whole answer's frames, and how many frames carry the first 40 words."""
    if dialect == "openai":
        return chat_stream(WORDS), 41  # the role chunk, then one chunk per word
    if dialect == "anthropic":
        frames = anthropic_stream(WORDS, input_tokens=11, output_tokens=60)
        return frames, 43  # message_start, block start, ping, then one delta per word
    return gemini_stream(WORDS, prompt_tokens=11, candidates_tokens=60), 40


def fault(dialect: str, kind: str) -> Reply:
    frames, at = answer_frames(dialect)
    if kind == "cut":
        return Reply.sse(frames, cut_after=at)
    if kind == "stall":
        return Reply.sse(frames, stall_after=at, stall_for=3.0)
    assert kind == "malformed"
    return Reply.sse([*frames[:at], b'data: {"choices": [{"delta": {"cont\n\n', *frames[at:]])


# ---- clients ----------------------------------------------------------------------------------


@dataclass
class Received:
    text: str = ""
    finishes: int = 0
    usage: tuple[int, int] | None = None  # input, output
    error: Exception | None = None
    indices: list[int] = field(default_factory=list)  # Anthropic content block indices
    first_at: float | None = None  # when the first text reached the client (monotonic)

    def add(self, text: str) -> None:
        self.text += text
        if self.text and self.first_at is None:
            self.first_at = time.monotonic()


def ask(rig: Rig, dialect: str, route: str) -> Received:
    got = Received()
    model = f"{dialect}-{route}"
    try:
        if dialect == "openai":
            _openai(rig, model, got)
        elif dialect == "anthropic":
            _anthropic(rig, model, got)
        else:
            _gemini(rig, model, got)
    except (openai.APIError, anthropic.APIError, genai_errors.APIError) as exc:
        got.error = exc
    return got


def _openai(rig: Rig, model: str, got: Received) -> None:
    client = openai.OpenAI(base_url=rig.url + "/v1", api_key="k", max_retries=0, timeout=20)
    with client:
        _openai_read(client, model, got)


def _openai_read(client: openai.OpenAI, model: str, got: Received) -> None:
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            got.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            got.add(choice.delta.content or "")
            got.finishes += choice.finish_reason is not None


def _anthropic(rig: Rig, model: str, got: Received) -> None:
    client = anthropic.Anthropic(base_url=rig.url, api_key="k", max_retries=0, timeout=20)
    with (
        client,
        client.messages.stream(
            model=model, max_tokens=200, messages=[{"role": "user", "content": "count"}]
        ) as stream,
    ):
        for event in stream:
            if event.type == "content_block_start":
                got.indices.append(event.index)
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                got.add(event.delta.text)
            elif event.type == "message_delta":
                got.finishes += 1
        final = stream.get_final_message()  # the SDK's sum of message_start and message_delta
        got.usage = (final.usage.input_tokens, final.usage.output_tokens)


def _gemini(rig: Rig, model: str, got: Received) -> None:
    client = genai.Client(
        api_key="k", http_options=types.HttpOptions(base_url=rig.url, timeout=20_000)
    )
    with client:
        _gemini_read(client, model, got)


def _gemini_read(client: genai.Client, model: str, got: Received) -> None:
    for chunk in client.models.generate_content_stream(model=model, contents="count"):
        got.add(chunk.text or "")
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is not None and candidate.finish_reason is not None:
            got.finishes += 1
            meta = chunk.usage_metadata
            assert meta is not None
            got.usage = (meta.prompt_token_count or 0, meta.candidates_token_count or 0)


def metric(rig: Rig, name: str, **labels: str) -> float:
    text = httpx.get(rig.url + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- time to first token ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_first_token_later_than_first_byte_limit_fails_over(rig: Rig, dialect: str) -> None:
    """Headers and the opening (role-only) frames at once, then keep-alive comments (so the
    stream is never idle for `stream_idle`) and the first token after about 5 s: with
    `first_byte: 0.5` the backup answers, and the client does not wait for the first token."""
    frames = {
        "openai": chat_stream(("late",)),
        "anthropic": anthropic_stream(("late",)),
        "gemini": gemini_stream(("late",)),
    }[dialect]
    opening = {"openai": 1, "anthropic": 3, "gemini": 0}[dialect]
    keep_alive = [b": keep-alive\n\n"] * 25
    slow = Reply.sse([*frames[:opening], *keep_alive, *frames[opening:]], frame_delay=0.2)
    rig.script(dialect, slow, Reply.sse(chat_stream(("from ", "backup"))))
    started = time.monotonic()
    got = ask(rig, dialect, "chat")
    elapsed = time.monotonic() - started
    assert got.error is None
    assert got.text == "from backup"
    assert got.finishes == 1
    # the primary's first token comes after >= 5 s; the limit (0.5 s) plus the backup's own
    # time is well under that, even on a loaded machine
    assert elapsed < 4.0, f"the client waited {elapsed:.2f}s"
    assert len(rig.backup.requests) == 1
    assert rig.backup.requests[0].json()["messages"][-1]["role"] == "user"  # not a continuation


@pytest.mark.parametrize("dialect", DIALECTS)
def test_first_token_after_20s_with_first_byte_5_fails_over_in_about_5s(
    rig: Rig, dialect: str
) -> None:
    """The issue's numbers: headers and the opening frames at once, keep-alive comments every
    half second (never idle), the first token after 20 s; `first_byte: 5`. The client's first
    text comes from the backup about 5 s after the request, not 20 s."""
    frames = {
        "openai": chat_stream(("late",)),
        "anthropic": anthropic_stream(("late",)),
        "gemini": gemini_stream(("late",)),
    }[dialect]
    opening = {"openai": 1, "anthropic": 3, "gemini": 0}[dialect]
    keep_alive = [b": keep-alive\n\n"] * 40
    rig.primaries[dialect].script(
        Reply.sse([*frames[:opening], *keep_alive, *frames[opening:]], frame_delay=0.5)
    )
    rig.primaries[dialect].requests.clear()
    rig.backup.script(Reply.sse(chat_stream(("from ", "backup"))))
    rig.backup.requests.clear()
    started = time.monotonic()
    got = ask(rig, dialect, "fb5")
    assert got.error is None, got.error
    assert got.text == "from backup"
    assert got.first_at is not None
    first = got.first_at - started
    assert first >= 4.5, f"failed over after {first:.2f}s, before the 5s limit"
    # 5 s plus the backup's own time (a fake: milliseconds; generous for a loaded machine)
    assert first < 8.0, f"the first text came after {first:.2f}s"
    assert len(rig.primaries[dialect].requests) == 1
    assert len(rig.backup.requests) == 1


# ---- completeness without a sentinel ------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_finish_and_usage_without_sentinel_is_a_clean_end(rig: Rig, dialect: str) -> None:
    frames, _ = answer_frames(dialect)
    if dialect == "openai":
        assert frames[-1] == b"data: [DONE]\n\n"
        frames = frames[:-1]
    elif dialect == "anthropic":
        assert b"message_stop" in frames[-1]
        frames = frames[:-1]
    before = metric(rig, "serving_requests_total", route=f"{dialect}-chat", status="200")
    rig.script(dialect, Reply.sse(frames))
    got = ask(rig, dialect, "chat")
    assert got.error is None
    assert got.text == ANSWER
    assert got.finishes == 1
    assert got.usage == (11, 60)
    assert not rig.backup.requests
    after = metric(rig, "serving_requests_total", route=f"{dialect}-chat", status="200")
    assert after == before + 1


def test_openai_client_gets_done_added(rig: Rig) -> None:
    frames = chat_stream(("a", "b"), done=False)
    rig.script("openai", Reply.sse(frames))
    body = {"model": "openai-chat", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", rig.url + "/v1/chat/completions", json=body) as response:
        raw = b"".join(response.iter_bytes())
    assert raw == b"".join(frames) + b"data: [DONE]\n\n"  # relayed byte for byte, then [DONE]


# ---- continuation -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cut", "stall", "malformed"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_broken_stream_is_continued_on_the_backup(rig: Rig, dialect: str, kind: str) -> None:
    attempted = metric(rig, "serving_stream_continuations_attempted_total", target="backup/b")
    succeeded = metric(rig, "serving_stream_continuations_succeeded_total", target="backup/b")
    rig.script(dialect, fault(dialect, kind))
    got = ask(rig, dialect, "chat")
    assert got.error is None, got.error
    assert got.text == ANSWER  # every word exactly once
    assert got.finishes == 1
    # input: what each part reported (an OpenAI stream reports none before its end); output:
    # the broken part's 40 deltas plus the continuation's 20
    assert got.usage == (11 if dialect == "openai" else 22, 60)
    if dialect == "anthropic":
        assert got.indices == [0]  # the open text block was carried on
    sent = rig.backup.requests[0].json()
    assert sent["continue_final_message"] is True
    assert sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "".join(WORDS[:40]).rstrip()}
    assert sent["messages"][-2]["role"] == "user"
    assert (
        metric(rig, "serving_stream_continuations_attempted_total", target="backup/b")
        == attempted + 1
    )
    assert (
        metric(rig, "serving_stream_continuations_succeeded_total", target="backup/b")
        == succeeded + 1
    )


@pytest.mark.parametrize("dialect", ["anthropic", "gemini"])
def test_translated_stream_is_continued_too(rig: Rig, dialect: str) -> None:
    """The client's dialect differs from the primary's: canonical events are spliced."""
    rig.script("openai", fault("openai", "cut"))
    got = ask(rig, dialect, "x")
    assert got.error is None, got.error
    assert got.text == ANSWER
    assert got.finishes == 1
    assert got.usage == (11, 60)
    if dialect == "anthropic":
        assert got.indices == [0]
    assert rig.backup.requests[0].json()["messages"][-1]["role"] == "assistant"


def test_continuation_is_announced_in_the_stream(rig: Rig) -> None:
    rig.script("openai", fault("openai", "cut"))
    body = {"model": "openai-chat", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", rig.url + "/v1/chat/completions", json=body) as response:
        raw = b"".join(response.iter_bytes())
    frames = [f for f in raw.split(b"\n\n") if f]
    comment = next(f for f in frames if f.startswith(b":"))
    assert b"x-serving-fallback: p-openai/m:stream_cut" in comment
    assert b"x-serving-target: backup/b" in comment
    assert b"summed over 2 parts" in comment
    assert frames[-1] == b"data: [DONE]"
    chunks = [json.loads(f[6:]) for f in frames if f.startswith(b"data: {")]
    assert {c["id"] for c in chunks} == {"chatcmpl-fake123"}  # one stream, one id
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("role")) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rejected_prefill_gives_the_original_break(rig: Rig, dialect: str) -> None:
    rig.script(dialect, fault(dialect, "cut"))
    got = ask(rig, dialect, "reject")
    assert got.error is not None
    assert "prefill" not in str(got.error)
    assert "upstream 'p-" in str(got.error)  # the cut on the primary
    assert got.finishes == 0  # never presented as finished
    assert ANSWER.startswith(got.text) and len(got.text) < len(ANSWER)
    assert len(rig.rejecting.requests) == 1


@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_call_cut_mid_arguments_is_not_continued(rig: Rig, dialect: str) -> None:
    if dialect == "openai":
        frames = chat_stream((), tool_calls=[("call_1", "lookup", ['{"ci', 'ty": "Pa', 'ris"}'])])
        reply = Reply.sse(frames, cut_after=3)  # role, call start, first fragment
    elif dialect == "anthropic":
        frames = anthropic_stream((), tool_uses=[("toolu_1", "lookup", ['{"ci', 'ty": "Pa'])])
        reply = Reply.sse(frames, cut_after=4)  # start, block start, ping, first fragment
    else:
        # Gemini sends a call whole; a stream cut after it, before its finish, is the same case
        frames = gemini_stream((), calls=[("lookup", {"city": "Paris"})], finish_reason=None)
        reply = Reply.sse(frames, cut_after=1)
    rig.script(dialect, reply)
    got = ask(rig, dialect, "chat")
    assert got.error is not None
    assert got.finishes == 0
    assert not rig.backup.requests  # no continuation


def test_continuation_off_for_a_route_ends_with_the_break() -> None:
    primary, backup = FakeUpstream(), FakeUpstream()
    with serve(primary.app) as p_url, serve(backup.app) as b_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {"name": "p", "base_url": p_url + "/v1", "timeouts": FAST},
                    {"name": "b", "base_url": b_url + "/v1", "timeouts": FAST},
                ],
                "routes": [
                    {
                        "model": "openai-chat",
                        "targets": [
                            {"upstream": "p", "model": "m"},
                            {"upstream": "b", "model": "m"},
                        ],
                        "continuation": {"enabled": False},
                    }
                ],
            },
            "off",
        )
        primary.script(fault("openai", "cut"))
        backup.script(Reply.sse(chat_stream(WORDS[40:])))
        with serve(create_app(settings)) as url:
            rig = Rig(url, {"openai": primary}, backup, backup)
            got = ask(rig, "openai", "chat")
    assert got.error is not None
    assert got.text == "".join(WORDS[:40])
    assert not backup.requests
