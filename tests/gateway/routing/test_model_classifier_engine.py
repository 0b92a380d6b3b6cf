"""The `model` classifier against the real embedded engine (vLLM CPU, SmolLM2): vLLM 0.32
accepts the structured-output request and answers one of the labels; a timeout shorter than
the engine's answer falls back to `features` within the bound."""

from __future__ import annotations

import time

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.policy.classify.features import THRESHOLD
from serving.gateway.policy.classify.features import classify as by_features
from serving.gateway.policy.classify.model import LABELS, ModelClassifier
from serving.gateway.policy.facts import build_facts
from serving.gateway.runtime import Gateway
from serving.gateway.settings import Settings, parse_settings
from tests.engine.running import RunningEngine
from tests.support.servers import serve

pytestmark = pytest.mark.engine

PROMPT = "Prove that there are infinitely many primes, step by step."


def _settings(engine: RunningEngine, timeout: float) -> Settings:
    return parse_settings(
        {
            "upstreams": [
                {
                    "name": "embedded",
                    "base_url": engine.base_url,
                    "timeouts": {"first_byte": 120, "total": 300},
                }
            ],
            "routes": [
                {
                    "model": "auto",
                    "targets": [{"upstream": "embedded", "model": engine.served_model}],
                    "classifier": {
                        "kind": "model",
                        "upstream": "embedded",
                        "model": engine.served_model,
                        "timeout": timeout,
                    },
                    "rules": [{"name": "hard", "when": {"tier": ["complex"]}, "to": "big"}],
                },
                {
                    "model": "big",
                    "targets": [{"upstream": "embedded", "model": engine.served_model}],
                },
            ],
        }
    )


async def test_the_engine_answers_a_label_under_structured_output(engine: RunningEngine) -> None:
    settings = _settings(engine, 120)
    gw = Gateway(settings)
    try:
        clf = ModelClassifier(settings.routes[0].classifier, gw.upstreams["embedded"])
        label = await clf.ask(build_facts({"messages": [{"role": "user", "content": PROMPT}]}))
        assert label in LABELS
        score, why = await clf.classify(
            build_facts({"messages": [{"role": "user", "content": "hi"}]})
        )
        assert why is None and score.by == "model" and score.tier in LABELS
    finally:
        await gw.aclose()


async def test_a_short_timeout_falls_back_to_features_within_the_bound(
    engine: RunningEngine,
) -> None:
    timeout = 0.005  # far below any CPU engine's answer time
    settings = _settings(engine, timeout)
    gw = Gateway(settings)
    try:
        clf = ModelClassifier(settings.routes[0].classifier, gw.upstreams["embedded"])
        facts = build_facts({"messages": [{"role": "user", "content": PROMPT}]})
        started = time.monotonic()
        score, why = await clf.classify(facts)
        took = time.monotonic() - started
        assert why == "timeout" and score.by == "fallback"
        assert score.tier == by_features(facts, THRESHOLD).tier
        assert took < timeout + 0.5, f"the classifier took {took:.3f} s"
    finally:
        await gw.aclose()


@pytest.mark.parametrize("timeout", [120.0, 0.005])
def test_through_the_gateway(engine: RunningEngine, timeout: float) -> None:
    with serve(create_app(_settings(engine, timeout))) as url:
        r = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "auto",
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 4,
                "temperature": 0,
            },
            timeout=300,
        )
        assert r.status_code == 200, r.text
        metrics = httpx.get(url + "/metrics").text
    by = "model" if timeout > 1 else "fallback"
    assert f'serving_classifier_decisions_total{{classifier="{by}",route="auto"' in metrics
    if timeout < 1:
        assert 'serving_classifier_fallbacks_total{reason="timeout",route="auto"} 1.0' in metrics
