"""What an OpenAI request carries that no other dialect can express is refused with a clear
400 naming the field, instead of being dropped silently (same-dialect upstreams never get here:
their requests are forwarded untouched)."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway.dialects.openai import protocol as op
from serving.gateway.dialects.openai import translate as ot
from serving.gateway.errors import InvalidRequest

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "x"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
    ],
)
def test_refused_with_the_field(extra: dict[str, Any], param: str) -> None:
    req = op.ChatCompletionRequest.model_validate({**BASE, **extra})
    with pytest.raises(InvalidRequest) as caught:
        ot.request_to_canonical(req)
    assert caught.value.param == param
    assert caught.value.status == 400


@pytest.mark.parametrize("extra", [{"n": 1}, {"logprobs": False}, {"logit_bias": {}}])
def test_neutral_values_are_accepted(extra: dict[str, Any]) -> None:
    req = op.ChatCompletionRequest.model_validate({**BASE, **extra})
    assert ot.request_to_canonical(req).messages[0].role == "user"


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    req = op.ChatCompletionRequest.model_validate(
        {**BASE, "max_tokens": 100, "max_completion_tokens": 10}
    )
    assert ot.request_to_canonical(req).sampling.max_tokens == 10
