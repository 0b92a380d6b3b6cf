"""Property: for every detector, any value it should detect, placed in any user-data field of
any dialect, encoded with any mix of the JSON escapes a conforming encoder may produce
(`\\uXXXX` of any character, surrogate pairs beyond the BMP, `\\/`), split across adjacent
parts, streamed or not: no request reaches the hosted fake, and the client gets its dialect's
privacy error (503, in its own envelope).

The chain is hosted targets of all three dialects (pass-through and translation), then a local
target nobody listens on. Bounded: a fixed number of examples, no deadline; hypothesis prints
the falsifying example and a reproduction blob on failure.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.gateway.app import create_app
from serving.gateway.policy.privacy import iban_ok, luhn_ok
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    anthropic_message,
    chat_completion,
    gemini_response,
)
from tests.support.servers import free_port, serve

DIALECTS = ("openai", "anthropic", "gemini")

# ---- values each detector must find ----------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_DIGITS = "0123456789"


def _s(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=lo, max_size=hi)


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(_s(_ALNUM, 1, 8)) + draw(st.sampled_from(["", ".", "_", "+", "-"]))
    local += draw(_s(_ALNUM, 1, 8))
    label = _s(_ALNUM.lower() + "-", 1, 10).filter(lambda x: x[0] != "-")
    labels = draw(st.lists(label, min_size=1, max_size=3))
    tld = draw(_s("abcdefghijklmnopqrstuvwxyz", 2, 6))
    return f"{local}@{'.'.join(labels)}.{tld}"


def _luhn_complete(prefix: str) -> str:
    return next(prefix + d for d in _DIGITS if luhn_ok(prefix + d))


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from([15, 16]))
    digits = _luhn_complete(
        draw(st.sampled_from("3456")) + draw(_s(_DIGITS, length - 2, length - 2))
    )
    if length == 15 or draw(st.booleans()):
        sep = draw(st.sampled_from(["", " ", "-"]))
        groups = (4, 6, 5) if length == 15 else (4, 4, 4, 4)
        out, i = [], 0
        for g in groups:
            out.append(digits[i : i + g])
            i += g
        return sep.join(out)
    return digits


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["DE", "GB", "FR", "NL", "ES"]))
    bban = draw(_s(_DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 14, 24))
    check = next(f"{c:02d}" for c in range(2, 99) if iban_ok(country + f"{c:02d}" + bban))
    iban = country + check + bban
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def phones(draw: st.DrawFn) -> str:
    a, b, c = draw(_s(_DIGITS, 3, 3)), draw(_s(_DIGITS, 3, 3)), draw(_s(_DIGITS, 4, 4))
    if draw(st.booleans()):
        sep = draw(st.sampled_from([" ", ".", "-"]))
        return f"({a}) {b}-{c}" if draw(st.booleans()) else f"{a}{sep}{b}{sep}{c}"
    return f"+{draw(st.integers(1, 99))} {a} {b} {c}"


@st.composite
def secrets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["sk", "sk-proj", "akia", "ghp", "slack", "pem"]))
    if kind == "sk":
        return "sk-" + draw(_s(_ALNUM, 20, 40))
    if kind == "sk-proj":
        return "sk-proj-" + draw(_s(_ALNUM + "_-", 20, 40))
    if kind == "akia":
        return "AKIA" + draw(_s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 16))
    if kind == "ghp":
        return "ghp_" + draw(_s(_ALNUM, 36, 36))
    if kind == "slack":
        return "xoxb-" + draw(_s(_ALNUM + "-", 10, 30))
    return "-----BEGIN RSA PRIVATE KEY-----"


VALUES = {
    "email": emails(),
    "card": cards(),
    "iban": ibans(),
    "national_id": ssns(),
    "phone": phones(),
    "secret": secrets(),
}

# ---- placements: where a value goes in each dialect's body -----------------------------------

Parts = list[str]  # the value's text, split into adjacent pieces


def _texts(parts: Parts, make: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [make(p) for p in parts]


def _oa_text(p: str) -> dict[str, Any]:
    return {"type": "text", "text": p}


def _args(parts: Parts) -> str:
    return json.dumps({"note": "".join(parts)})


def _joined(parts: Parts) -> str:
    return "".join(parts)


OPENAI: dict[str, Callable[[Parts], dict[str, Any]]] = {
    "user_string": lambda v: {"messages": [{"role": "user", "content": _joined(v)}]},
    "user_parts": lambda v: {"messages": [{"role": "user", "content": _texts(v, _oa_text)}]},
    "system_parts": lambda v: {
        "messages": [
            {"role": "system", "content": _texts(v, _oa_text)},
            {"role": "user", "content": "hi"},
        ]
    },
    "assistant": lambda v: {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": _joined(v)},
            {"role": "user", "content": "go on"},
        ]
    },
    "tool_call_arguments": lambda v: {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "save", "arguments": _args(v)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ]
    },
    "tool_result": lambda v: {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": _texts(v, _oa_text)},
        ]
    },
    "file_name": lambda v: {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "read this"},
                    {
                        "type": "file",
                        "file": {
                            "filename": _joined(v) + ".pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0xLjQK",
                        },
                    },
                ],
            }
        ]
    },
    "tool_description": lambda v: {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": _joined(v)}},
        ],
    },
}


def _an_text(p: str) -> dict[str, Any]:
    return {"type": "text", "text": p}


ANTHROPIC: dict[str, Callable[[Parts], dict[str, Any]]] = {
    "user_string": lambda v: {"messages": [{"role": "user", "content": _joined(v)}]},
    "user_blocks": lambda v: {"messages": [{"role": "user", "content": _texts(v, _an_text)}]},
    "system_string": lambda v: {
        "system": _joined(v),
        "messages": [{"role": "user", "content": "hi"}],
    },
    "system_blocks": lambda v: {
        "system": _texts(v, _an_text),
        "messages": [{"role": "user", "content": "hi"}],
    },
    "tool_use_input": lambda v: {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "save", "input": {"n": _joined(v)}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
            },
        ]
    },
    "tool_result_blocks": lambda v: {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": _texts(v, _an_text)}
                ],
            },
        ]
    },
    "document_text": lambda v: {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": _joined(v)},
                    },
                    {"type": "text", "text": "summarise"},
                ],
            }
        ]
    },
    "document_title": lambda v: {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": _joined(v),
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0xLjQK",
                        },
                    },
                    {"type": "text", "text": "summarise"},
                ],
            }
        ]
    },
}


def _gm_text(p: str) -> dict[str, Any]:
    return {"text": p}


GEMINI: dict[str, Callable[[Parts], dict[str, Any]]] = {
    "user_parts": lambda v: {"contents": [{"role": "user", "parts": _texts(v, _gm_text)}]},
    "system_instruction": lambda v: {
        "systemInstruction": {"parts": _texts(v, _gm_text)},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    },
    "function_call_args": lambda v: {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "f", "args": {"n": _joined(v)}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "f", "response": {"result": "ok"}}}],
            },
        ]
    },
    "function_response": lambda v: {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "f", "response": {"result": _joined(v)}}}],
            },
        ]
    },
    "inline_text_document": lambda v: {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "text/plain",
                            "data": base64.b64encode(_joined(v).encode()).decode(),
                        }
                    },
                    {"text": "summarise"},
                ],
            }
        ]
    },
}

PLACEMENTS = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
CASES = [(d, field) for d, table in PLACEMENTS.items() for field in table]

# ---- a conforming encoder that escapes at random ---------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}


def _char(ch: str, rng: random.Random) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch] if rng.random() < 0.5 else f"\\u{code:04x}"
    if code < 0x20:
        return f"\\u{code:04x}"
    if ch == "/" and rng.random() < 0.5:
        return "\\/"
    if rng.random() < 0.4:
        if code > 0xFFFF:
            hi, lo = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            return f"\\u{hi:04x}\\u{lo:04X}" if rng.random() < 0.5 else f"\\u{hi:04X}\\u{lo:04x}"
        return f"\\u{code:04x}" if rng.random() < 0.5 else f"\\u{code:04X}"
    return ch


def encode(value: Any, rng: random.Random) -> str:
    if isinstance(value, str):
        return '"' + "".join(_char(ch, rng) for ch in value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{encode(k, rng)}:{encode(v, rng)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v, rng) for v in value) + "]"
    return json.dumps(value)


# ---- the gateway -----------------------------------------------------------------------------


@dataclass
class Setup:
    url: str
    hosted: FakeUpstream


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    hosted = FakeUpstream([Reply.json(chat_completion("LEAKED"))])
    base = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
    with serve(hosted.app) as h_url:
        upstreams: list[dict[str, Any]] = [
            {"name": f"hosted-{d}", "dialect": d, "base_url": h_url + base[d], "locality": "hosted"}
            for d in DIALECTS
        ]
        upstreams.append(
            {"name": "local", "base_url": f"http://127.0.0.1:{free_port()}/v1", "locality": "local"}
        )
        targets = [{"upstream": f"hosted-{d}", "model": "m"} for d in DIALECTS]
        targets.append({"upstream": "local", "model": "l"})
        # `chat-<dialect>` starts with the client's own dialect (pass-through: the controls'
        # attachments have no canonical form); `chat` starts with a translating target.
        routes = [{"model": "chat", "targets": targets}]
        for d in DIALECTS:
            own = [t for t in targets if t["upstream"] == f"hosted-{d}"]
            routes.append(
                {"model": f"chat-{d}", "targets": own + [t for t in targets if t not in own]}
            )
        config = {
            "upstreams": upstreams,
            "routes": routes,
            "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
        }
        with serve(create_app(parse_settings(config, "property"))) as url:
            yield Setup(url, hosted)


def post(
    s: Setup,
    dialect: str,
    body: dict[str, Any],
    stream: bool,
    rng: random.Random,
    route: str = "chat",
) -> Any:
    if dialect == "openai":
        path, body = "/v1/chat/completions", {"model": route, **body, "stream": stream}
    elif dialect == "anthropic":
        path, body = "/v1/messages", {"model": route, "max_tokens": 16, **body, "stream": stream}
    else:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        path = f"/v1beta/models/{route}:{method}"
    data = encode(body, rng).encode("utf-8", "surrogatepass")
    return httpx.post(
        s.url + path, content=data, headers={"content-type": "application/json"}, timeout=10
    )


def assert_privacy_error(dialect: str, response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    if dialect == "openai":
        message = body["error"]["message"]
    elif dialect == "anthropic":
        assert body["type"] == "error"
        message = body["error"]["message"]
    else:
        assert body["error"]["status"] == "UNAVAILABLE"
        message = body["error"]["message"]
    assert "private" in message and "no hosted target was contacted" in message


@st.composite
def splits(draw: st.DrawFn, value: str) -> Parts:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(value) - 1)), max_size=2)))
    bounds = [0, *cuts, len(value)]
    return [value[a:b] for a, b in itertools.pairwise(bounds) if b > a]


_PADDING = st.sampled_from(["", "my ", "note: ", "é ", "\U0001f512 ", "(", "x/"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, str, Parts, bool, int]:
    detector = draw(st.sampled_from(sorted(VALUES)))
    dialect, placement = draw(st.sampled_from(CASES))
    value = draw(VALUES[detector])
    text = draw(_PADDING) + value + draw(st.sampled_from(["", " please", ".", " \U0001f600", "/"]))
    return (
        detector,
        dialect,
        placement,
        draw(splits(text)),
        draw(st.booleans()),
        draw(st.integers()),
    )


@settings(
    max_examples=300,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_detected_values_never_reach_a_hosted_upstream(
    setup: Setup, case: tuple[str, str, str, Parts, bool, int]
) -> None:
    _detector, dialect, placement, parts, stream, seed = case
    setup.hosted.requests.clear()
    body = PLACEMENTS[dialect][placement](parts)
    response = post(setup, dialect, body, stream, random.Random(seed))
    assert setup.hosted.requests == []
    assert_privacy_error(dialect, response)


_OWN_REPLY: dict[str, Callable[[], Reply]] = {
    "openai": lambda: Reply.json(chat_completion("served")),
    "anthropic": lambda: Reply.json(anthropic_message("served")),
    "gemini": lambda: Reply.json(gemini_response("served")),
}


@pytest.mark.parametrize(("dialect", "placement"), CASES)
def test_every_placement_reaches_the_hosted_fake_without_a_detected_value(
    setup: Setup, dialect: str, placement: str
) -> None:
    """The control: the same bodies with harmless text are served by the hosted fake, so the
    property above cannot pass because a placement is refused for another reason."""
    setup.hosted.script(_OWN_REPLY[dialect]())
    setup.hosted.requests.clear()
    body = PLACEMENTS[dialect][placement](["a harmless ", "sentence"])
    response = post(setup, dialect, body, False, random.Random(0), route=f"chat-{dialect}")
    assert response.status_code == 200, response.text
    assert len(setup.hosted.requests) == 1, [(q.method, q.path) for q in setup.hosted.requests]
