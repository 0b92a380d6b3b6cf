"""The `model` classifier: a local engine reads the prompt and answers one label.

The answer is constrained with vLLM's structured output (`structured_outputs: {"choice":
[...]}` in vLLM 0.32's chat request; older releases called it `guided_choice`), so a small
model can only say "simple" or "complex". The call is bounded by `classifier.timeout`; any
failure, a timeout, or an answer outside the labels falls back to the `features` classifier
(counted in `serving_classifier_fallbacks_total`), so a slow or broken classifier never fails
the request, it only routes it by features.
"""

from __future__ import annotations

import asyncio
import json
import logging

from serving.gateway.errors import GatewayError
from serving.gateway.policy.classify import Score, features
from serving.gateway.policy.facts import RequestFacts
from serving.gateway.settings import Classifier
from serving.gateway.upstreams.base import RawCall, RawResponse, UpstreamClient

log = logging.getLogger("serving.gateway.policy.classify.model")

LABELS = ("simple", "complex")
PROMPT_CHARS = 2000  # the classifier reads the head of the prompt: bounded cost
INSTRUCTION = (
    "Classify the user's request for an AI assistant. Answer 'simple' when a small, cheap model"
    " can answer it well (a fact, a definition, a short rewrite, small talk); answer 'complex'"
    " when it needs careful reasoning, several steps, code, math or long writing."
)


def request_body(prompt: str, model: str) -> dict[str, object]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": prompt[:PROMPT_CHARS]},
        ],
        "max_tokens": 4,
        "temperature": 0,
        "structured_outputs": {"choice": list(LABELS)},
    }


class ModelClassifier:
    def __init__(self, config: Classifier, upstream: UpstreamClient) -> None:
        assert config.model is not None
        self._config = config
        self._upstream = upstream
        self._model = config.model

    async def ask(self, facts: RequestFacts) -> str:
        body = request_body(facts.prompt or facts.text, self._model)
        data = json.dumps(body).encode()
        call = RawCall("/chat/completions", data, body, stream=False)
        result = await self._upstream.forward(call, self._model)
        if not isinstance(result, RawResponse):
            raise ValueError("the classifier answered with a stream")
        answer = json.loads(result.body)["choices"][0]["message"]["content"]
        label = str(answer).strip().strip('"').lower()
        if label not in LABELS:
            raise ValueError(f"the classifier answered {label[:20]!r}, not a label")
        return label

    async def classify(self, facts: RequestFacts) -> tuple[Score, str | None]:
        """The score, and why it fell back to features (None when the model answered)."""
        try:
            label = await asyncio.wait_for(self.ask(facts), self._config.timeout)
        except TimeoutError:
            why = "timeout"
        except (GatewayError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.debug("classifier model failed (%s)", type(exc).__name__)
            why = "error"
        else:
            return Score(label, 1.0 if label == "complex" else 0.0, "model"), None  # type: ignore[arg-type]
        fallback = features.classify(facts, self._config.threshold)
        return Score(fallback.tier, fallback.score, "fallback"), why
