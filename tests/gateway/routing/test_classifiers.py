"""The complexity classifiers and when they are asked: `features` is deterministic and reads
its documented cues; `trained` loads the shipped weights and trains on labels; the `model`
classifier is bounded by its timeout and falls back on any failure (fake engines here; the
real engine in test_model_classifier_engine.py); no classifier runs unless a reached rule
needs the tier."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.metrics import Metrics
from serving.gateway.policy.classify import features, trained
from serving.gateway.policy.classify.model import ModelClassifier
from serving.gateway.policy.context import ContextPolicy
from serving.gateway.policy.facts import build_facts
from serving.gateway.policy.hints import Hints
from serving.gateway.policy.router import Router
from serving.gateway.runtime import Gateway
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve

SIMPLE = "What is the capital of Portugal?"
COMPLEX = (
    "Design a rate limiter for an HTTP API across several replicas; compare a token bucket"
    " with a sliding window, explain the trade-offs, and list the edge cases it must handle."
)


def _facts(text: str, turns: int = 1) -> Any:
    messages = [{"role": "user", "content": text} for _ in range(turns)]
    return build_facts({"messages": messages})


def test_features_scores_are_deterministic_and_ordered() -> None:
    simple, hard = features.classify(_facts(SIMPLE)), features.classify(_facts(COMPLEX))
    assert (simple.tier, hard.tier) == ("simple", "complex")
    assert features.score(_facts(COMPLEX)) == hard.score  # same input, same score
    values = features.features(_facts(COMPLEX))
    assert values["reasoning"] == 1.0 and values["constraints"] > 0
    assert features.features(_facts(SIMPLE))["lookup"] == 1.0
    deeper = features.score(_facts("Why is that?", turns=9))
    assert deeper > features.score(_facts("Why is that?"))


def test_features_reads_a_bounded_head() -> None:
    long = _facts("why " * 200_000)
    assert features.cues(long.prompt).words <= features.SCAN_CHARS


def test_coding_detection() -> None:
    assert features.cues("Fix this: ```x = 1```").coding
    assert features.cues("Write a Python function that sorts a list").coding
    assert not features.cues("What is the capital of France?").coding


def test_shipped_weights_load_and_separate_the_sample_ends() -> None:
    model = trained.load()
    assert model.weights.shape == (trained.DIM + 2,)
    assert trained.WEIGHTS_FILE.stat().st_size < 300 * 1024
    assert model.classify(_facts(SIMPLE)).tier == "simple"
    assert model.classify(_facts(COMPLEX)).tier == "complex"


def test_train_round_trip(tmp_path: Path) -> None:
    rows = [
        *({"prompt": f"what is {w}?", "label": "simple"} for w in "abcdefghij"),
        *(
            {
                "prompt": f"explain step by step and compare designs of {w} with trade-offs",
                "label": "complex",
            }
            for w in "abcdefghij"
        ),
    ]
    examples = trained.read_labels([json.dumps(r) for r in rows])
    model = trained.train(examples)
    assert trained.accuracy(model, examples) == 1.0
    model.save(tmp_path / "w.npz")
    again = trained.load(tmp_path / "w.npz")
    assert again.probability("explain the trade-offs") == pytest.approx(
        model.probability("explain the trade-offs")
    )
    with pytest.raises(ValueError, match="both simple and complex"):
        trained.train(examples[:10])
    with pytest.raises(ValueError, match=":2:"):
        trained.read_labels(['{"prompt": "a", "label": "simple"}', '{"prompt": "b"}'])


def _router_config(url: str, kind: str, timeout: float = 0.3) -> dict[str, Any]:
    classifier: dict[str, Any] = {"kind": kind}
    if kind == "model":
        classifier.update(upstream="small", model="clf", timeout=timeout)
    return {
        "upstreams": [{"name": "small", "base_url": url + "/v1"}],
        "routes": [
            {
                "model": "auto",
                "targets": [{"upstream": "small", "model": "cheap"}],
                "classifier": classifier,
                "rules": [
                    {"name": "tools", "when": {"needs": ["tools"]}, "to": "big"},
                    {"name": "hard", "when": {"tier": ["complex"]}, "to": "big"},
                ],
            },
            {"model": "big", "targets": [{"upstream": "small", "model": "premium"}]},
        ],
    }


class CountingRouter(Router):
    asked = 0

    async def classify(self, *args: Any, **kw: Any) -> Any:
        CountingRouter.asked += 1
        return await super().classify(*args, **kw)


def test_the_classifier_is_asked_only_when_a_reached_rule_needs_the_tier() -> None:
    settings = parse_settings(_router_config("http://127.0.0.1:9", "features"))
    router = CountingRouter(settings, {}, Metrics(), ContextPolicy(settings.context))
    route = settings.routes[0]
    with_tools = build_facts(
        {"messages": [{"role": "user", "content": COMPLEX}], "tools": [{"name": "f"}]}
    )
    CountingRouter.asked = 0
    d = asyncio.run(router.decide(route, with_tools, Hints()))
    assert (d.rule, d.score, CountingRouter.asked) == ("tools", None, 0)
    d = asyncio.run(router.decide(route, _facts(COMPLEX), Hints(tier="simple")))
    assert (d.rule, CountingRouter.asked) == (None, 0)  # the forced tier, no classifier
    assert d.score is not None and d.score.by == "forced"
    d = asyncio.run(router.decide(route, _facts(COMPLEX), Hints()))
    assert (d.rule, d.route.model, CountingRouter.asked) == ("hard", "big", 1)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply.json(chat_completion("complex"), delay=2.0), "timeout"),
        (Reply.json(chat_completion("maybe")), "error"),
        (Reply.json({"error": {"message": "boom"}}, 500), "error"),
        (Reply.json({"choices": []}), "error"),
    ],
)
async def test_model_classifier_falls_back_within_its_timeout(reply: Reply, why: str) -> None:
    fake = FakeUpstream([reply])
    with serve(fake.app) as url:
        settings = parse_settings(_router_config(url, "model", timeout=0.3))
        gw = Gateway(settings)
        try:
            clf = ModelClassifier(settings.routes[0].classifier, gw.upstreams["small"])
            loop = asyncio.get_running_loop()
            started = loop.time()
            score, reason = await clf.classify(_facts(COMPLEX))
            assert loop.time() - started < 1.0
        finally:
            await gw.aclose()
    assert (reason, score.by, score.tier) == (why, "fallback", "complex")
    sent = fake.requests[0].json()
    assert sent["structured_outputs"] == {"choice": ["simple", "complex"]}
    assert sent["model"] == "clf"


def test_model_classifier_through_the_gateway_names_the_tier() -> None:
    fake = FakeUpstream([Reply.json(chat_completion("complex")), Reply.json(chat_completion("ok"))])
    with (
        serve(fake.app) as url,
        serve(create_app(parse_settings(_router_config(url, "model")))) as gw,
    ):
        r = httpx.post(
            gw + "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": SIMPLE}]},
            timeout=10,
        )
        assert r.status_code == 200
        assert r.headers["x-serving-route"] == "big; rule=hard; tier=complex"
        assert [q.json()["model"] for q in fake.requests] == ["clf", "premium"]
        forced = httpx.post(
            gw + "/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": COMPLEX}]},
            headers={"x-serving-tier": "simple"},
            timeout=10,
        )
        assert forced.headers["x-serving-target"] == "small/cheap"
        assert len(fake.requests) == 3  # no classifier call for a forced tier


def test_a_model_classifier_must_name_a_local_openai_upstream() -> None:
    config = _router_config("http://127.0.0.1:9", "model")
    config["upstreams"][0]["locality"] = "hosted"
    with pytest.raises(Exception, match="not a local"):
        parse_settings(config)
