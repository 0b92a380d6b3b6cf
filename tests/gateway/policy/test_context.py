"""Context-window routing: the estimate from facts, the output budget, and exact counting."""

from __future__ import annotations

import httpx

from serving.gateway.app import create_app
from serving.gateway.policy.context import ContextPolicy, estimate_tokens, with_max_tokens
from serving.gateway.policy.facts import build_facts
from serving.gateway.settings import Context, Target, parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve


def test_estimate_rounds_up() -> None:
    assert estimate_tokens(7, 3.5) == 2
    assert estimate_tokens(8, 3.5) == 3
    assert estimate_tokens(0, 3.5) == 0


def test_requested_output_in_every_dialect() -> None:
    ctx = ContextPolicy(Context(default_output_tokens=256))
    assert ctx.output(build_facts({"max_tokens": 100})) == 100
    assert ctx.output(build_facts({"max_completion_tokens": 50, "max_tokens": 100})) == 50
    assert ctx.output(build_facts({"generationConfig": {"maxOutputTokens": 77}})) == 77
    assert ctx.output(build_facts({})) == 256
    assert ctx.output(build_facts({"max_tokens": "lots"})) == 256


def test_text_tokens_count_decoded_text_not_json_syntax() -> None:
    ctx = ContextPolicy(Context(bytes_per_token=4))
    facts = build_facts({"messages": [{"role": "user", "content": "x" * 400}]})
    assert 100 <= ctx.text_tokens(facts) <= 110  # 400 bytes / 4, role markers, field names


def test_room_and_borderline() -> None:
    ctx = ContextPolicy(Context(tokenize_margin=0.1))
    small = Target(upstream="u", model="m", context_window=1000)
    unknown = Target(upstream="u", model="n")
    assert ctx.room(small, 900) == 100 and ctx.room(unknown, 10**9) is None
    assert ctx.borderline([(small, 950)], 100)  # 1050 is within 10 % of 1000
    assert not ctx.borderline([(small, 500)], 100)
    assert not ctx.borderline([(unknown, 950)], 100)


def test_output_budget_rewrite_per_dialect() -> None:
    assert with_max_tokens({"max_tokens": 9}, "openai", 5) == {"max_tokens": 5}
    assert with_max_tokens({"max_completion_tokens": 9}, "openai", 5) == {
        "max_completion_tokens": 5
    }
    assert with_max_tokens({}, "anthropic", 5) == {"max_tokens": 5}
    out = with_max_tokens({"generationConfig": {"temperature": 1}}, "gemini", 5)
    assert out == {"generationConfig": {"temperature": 1, "maxOutputTokens": 5}}


def test_exact_count_rescues_a_prompt_the_estimate_put_over_the_window() -> None:
    engine = FakeUpstream()
    hosted = FakeUpstream([Reply.json(chat_completion("from hosted"))])
    with serve(engine.app) as e_url, serve(hosted.app) as h_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {"name": "engine", "base_url": e_url + "/v1", "locality": "local"},
                    {"name": "hosted", "base_url": h_url + "/v1", "locality": "hosted"},
                ],
                "routes": [
                    {
                        "model": "r",
                        "targets": [
                            {"upstream": "engine", "model": "small", "context_window": 300},
                            {"upstream": "hosted", "model": "big", "context_window": 100000},
                        ],
                    }
                ],
                "context": {"tokenize_upstream": "engine", "tokenize_margin": 0.5},
            }
        )
        body = {
            "model": "r",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "x" * 1000}],
        }  # ~290 estimated: borderline for a window of 300
        with serve(create_app(settings)) as url:
            engine.script(Reply.json({"count": 40}), Reply.json(chat_completion("from engine")))
            r = httpx.post(url + "/v1/chat/completions", json=body)
            assert r.status_code == 200
            assert r.headers["x-serving-target"] == "engine/small"
            assert [q.path for q in engine.requests] == ["/tokenize", "/v1/chat/completions"]

            engine.requests.clear()
            engine.script(Reply.json({"count": 400}))  # really too long: skipped, no attempt
            r = httpx.post(url + "/v1/chat/completions", json=body)
            assert r.headers["x-serving-target"] == "hosted/big"
            assert r.headers["x-serving-fallback"] == "engine/small:context_window"
            assert [q.path for q in engine.requests] == ["/tokenize"]
