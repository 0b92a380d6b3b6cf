"""deploy/examples/seed-router.yaml reproduces the seed's decision framework: every branch,
its order, and the 200,000 / 200,001-token boundary, table-driven over real request bodies in
each dialect (facts built as the gateway builds them)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.gateway.app import create_app
from serving.gateway.metrics import Metrics
from serving.gateway.policy.context import ContextPolicy
from serving.gateway.policy.facts import build_facts
from serving.gateway.policy.hints import Hints
from serving.gateway.policy.router import Decision, Router
from serving.gateway.settings import Settings, load_settings, parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve

SEED = Path(__file__).resolve().parents[3] / "deploy/examples/seed-router.yaml"
AUDIO = base64.b64encode(b"RIFF" + b"\0" * 40).decode()


def _router(settings: Settings) -> Router:
    return Router(settings, {}, Metrics(), ContextPolicy(settings.context))


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def _decide(router: Router, settings: Settings, body: dict[str, Any], hints: Hints) -> Decision:
    route = settings.route_for("auto")
    assert route is not None
    return asyncio.run(router.decide(route, build_facts(body), hints))


OPENAI_AUDIO = {
    "model": "auto",
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "transcribe"},
                {"type": "input_audio", "input_audio": {"data": AUDIO, "format": "wav"}},
            ],
        }
    ],
}
GEMINI_AUDIO = {
    "contents": [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": AUDIO}}]}
    ]
}
CODE = "Write a Python function that merges two sorted lists."
ANTHROPIC_CODE = {
    "model": "auto",
    "max_tokens": 64,
    "system": "You are helpful.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix this bug: ```x=1```"}]}
    ],
}
BASIC, GOOD, BEST = (Hints(quality=q) for q in ("basic", "good", "best"))
CHEAP_BASIC = Hints(quality="basic", cost_sensitive=True)
CHEAP_GOOD = Hints(quality="good", cost_sensitive=True)
CHEAP_BEST = Hints(quality="best", cost_sensitive=True)
CHEAP = Hints(cost_sensitive=True)
NONE = Hints()

# (case, body, hints, rule that fires, route that serves)
TABLE: list[tuple[str, dict[str, Any], Hints, str, str]] = [
    ("cost+basic", _chat("hello"), CHEAP_BASIC, "cost-basic", "gpt-4o-mini"),
    ("cost+good", _chat("hello"), CHEAP_GOOD, "cost-good", "claude-3-haiku"),
    ("cost+best skips both cost rules", _chat("hello"), CHEAP_BEST, "best", "claude-3-5-sonnet"),
    ("cost without quality", _chat("hello"), CHEAP, "otherwise", "gpt-4o"),
    ("basic without cost", _chat("hello"), BASIC, "otherwise", "gpt-4o"),
    ("good without cost", _chat("hello"), GOOD, "otherwise", "gpt-4o"),
    ("coding", _chat(CODE), NONE, "coding", "claude-3-5-sonnet"),
    ("coding, anthropic dialect", ANTHROPIC_CODE, NONE, "coding", "claude-3-5-sonnet"),
    ("cost+basic wins over coding", _chat(CODE), CHEAP_BASIC, "cost-basic", "gpt-4o-mini"),
    ("coding wins over best", _chat(CODE), BEST, "coding", "claude-3-5-sonnet"),
    ("audio input, openai", OPENAI_AUDIO, NONE, "audio", "gpt-4o-audio"),
    ("audio input, gemini", GEMINI_AUDIO, NONE, "audio", "gpt-4o-audio"),
    ("audio output", _chat("say hi", modalities=["text", "audio"]), NONE, "audio", "gpt-4o-audio"),
    ("audio wins over best", OPENAI_AUDIO, BEST, "audio", "gpt-4o-audio"),
    ("best", _chat("hello"), BEST, "best", "claude-3-5-sonnet"),
    ("otherwise", _chat("hello"), NONE, "otherwise", "gpt-4o"),
]


@pytest.fixture(scope="module")
def seed() -> Settings:
    return load_settings(SEED)


@pytest.mark.parametrize(
    ("body", "hints", "rule", "route"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_every_branch(
    seed: Settings, body: dict[str, Any], hints: Hints, rule: str, route: str
) -> None:
    decision = _decide(_router(seed), seed, body, hints)
    assert (decision.rule, decision.route.model) == (rule, route)


def _body_of_tokens(router: Router, tokens: int) -> dict[str, Any]:
    """A plain chat body whose estimated prompt is exactly `tokens` tokens."""
    n = int(tokens * 3.5) - 40
    while True:
        body = _chat("a" * n)
        got = router.signals(build_facts(body), NONE).prompt_tokens
        if got == tokens:
            return body
        assert got < tokens, f"overshot: {got}"
        n += 1


@pytest.mark.parametrize(
    ("tokens", "hints", "rule"),
    [
        (200_000, NONE, "otherwise"),
        (200_001, NONE, "long-context"),
        (200_000, BEST, "best"),
        (200_001, BEST, "long-context"),  # long context comes before quality "best"
        (200_001, CHEAP_GOOD, "cost-good"),  # and after the cost rules
    ],
)
def test_the_context_boundary(seed: Settings, tokens: int, hints: Hints, rule: str) -> None:
    router = _router(seed)
    body = _body_of_tokens(router, tokens)
    assert router.signals(build_facts(body), hints).prompt_tokens == tokens
    assert _decide(router, seed, body, hints).rule == rule


def test_long_coding_prompt_is_coding_first(seed: Settings) -> None:
    router = _router(seed)
    body = _body_of_tokens(router, 200_001)
    body["messages"][0]["content"] = "```python\n" + body["messages"][0]["content"]
    assert _decide(router, seed, body, NONE).rule == "coding"


@pytest.mark.parametrize(
    ("headers", "content", "target", "route_header"),
    [
        (
            {"x-serving-cost-sensitive": "true", "x-serving-quality": "basic"},
            "hi",
            "openai/gpt-4o-mini",
            "gpt-4o-mini; rule=cost-basic",
        ),
        ({"x-serving-quality": "best"}, "hi", "anthropic/claude-3-5-sonnet-20241022", None),
        ({}, CODE, "anthropic/claude-3-5-sonnet-20241022", "claude-3-5-sonnet; rule=coding"),
        ({}, "hi", "openai/gpt-4o", "gpt-4o; rule=otherwise"),
    ],
)
def test_the_seed_through_the_gateway(
    headers: dict[str, str], content: str, target: str, route_header: str | None
) -> None:
    """The seed file itself, its hosted upstreams pointed at a fake: the header names the rule
    and the rule is counted."""
    fake = FakeUpstream([Reply.json(chat_completion("ok"))])
    data = yaml.safe_load(SEED.read_text())
    with serve(fake.app) as url:
        for u in data["upstreams"]:
            u.update(dialect="openai", base_url=url + "/v1")
        with serve(create_app(parse_settings(data))) as gw:
            r = httpx.post(
                gw + "/v1/chat/completions",
                json=_chat(content),
                headers=headers,
                timeout=10,
            )
            assert r.status_code == 200, r.text
            assert r.headers["x-serving-target"] == target
            if route_header is not None:
                assert r.headers["x-serving-route"] == route_header
            rule = r.headers["x-serving-route"].split("rule=")[1]
            metrics = httpx.get(gw + "/metrics").text
            assert f'serving_route_decisions_total{{route="auto",rule="{rule}"' in metrics


def test_a_bad_hint_is_the_clients_400() -> None:
    fake = FakeUpstream([Reply.json(chat_completion("ok"))])
    data = yaml.safe_load(SEED.read_text())
    with serve(fake.app) as url:
        for u in data["upstreams"]:
            u.update(dialect="openai", base_url=url + "/v1")
        with serve(create_app(parse_settings(data))) as gw:
            r = httpx.post(
                gw + "/v1/chat/completions",
                json=_chat("hi"),
                headers={"x-serving-quality": "premium"},
                timeout=10,
            )
    assert r.status_code == 400
    assert "x-serving-quality" in r.json()["error"]["message"]
    assert fake.requests == []


def test_a_keys_route_hints_apply_unless_a_header_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROUTING_TEST_KEY", "sk-frugal")
    fake = FakeUpstream([Reply.json(chat_completion("ok"))])
    data = yaml.safe_load(SEED.read_text())
    data["server"] = {
        "keys": [
            {
                "name": "frugal",
                "key_env": "ROUTING_TEST_KEY",
                "route_hints": {"quality": "basic", "cost_sensitive": True},
            }
        ]
    }
    with serve(fake.app) as url:
        for u in data["upstreams"]:
            u.update(dialect="openai", base_url=url + "/v1")
        with serve(create_app(parse_settings(data))) as gw:

            def target(headers: dict[str, str]) -> str:
                r = httpx.post(
                    gw + "/v1/chat/completions",
                    json=_chat("hello"),
                    headers={"authorization": "Bearer sk-frugal", **headers},
                    timeout=10,
                )
                assert r.status_code == 200, r.text
                return r.headers["x-serving-target"]

            assert target({}) == "openai/gpt-4o-mini"
            assert target({"x-serving-quality": "good"}) == "anthropic/claude-3-haiku-20240307"
            assert target({"x-serving-cost-sensitive": "false"}) == "openai/gpt-4o"
