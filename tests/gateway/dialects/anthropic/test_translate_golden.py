"""Golden tests for the Anthropic conversions the top-level goldens leave out: structured
output in both directions (`output_config.format` and the beta's `output_format`), server tools
refused by name, and the count_tokens body sent to an Anthropic upstream.

Each file in golden/ holds `kind`, `input` and `expected`; a changed golden is a reviewed change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serving.gateway.dialects.anthropic import protocol as ap
from serving.gateway.dialects.anthropic import translate as at
from serving.gateway.dialects.openai import protocol as op
from serving.gateway.dialects.openai import translate as ot
from serving.gateway.errors import InvalidRequest
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"


def openai_request_to_anthropic(data: dict[str, Any]) -> Any:
    req = ot.request_to_canonical(op.ChatCompletionRequest.model_validate(data))
    return at.request_from_canonical(req, "claude-upstream")


def anthropic_request_to_openai(data: dict[str, Any]) -> Any:
    req = at.request_to_canonical(ap.MessagesRequest.model_validate(data))
    return ot.request_from_canonical(req, "upstream-model")


def anthropic_request_refused(data: dict[str, Any]) -> Any:
    with pytest.raises(InvalidRequest) as info:
        at.request_to_canonical(ap.MessagesRequest.model_validate(data))
    return {"status": info.value.status, "param": info.value.param, "message": info.value.message}


def anthropic_count_request_to_anthropic(data: dict[str, Any]) -> Any:
    req = at.count_request_to_canonical(ap.CountTokensRequest.model_validate(data))
    return at.count_request_from_canonical(req, "claude-upstream")


def anthropic_count_request_to_openai(data: dict[str, Any]) -> Any:
    req = at.count_request_to_canonical(ap.CountTokensRequest.model_validate(data))
    return ot.request_from_canonical(req, "upstream-model")


KINDS: golden.Kinds = {
    f.__name__: f
    for f in (
        openai_request_to_anthropic,
        anthropic_request_to_openai,
        anthropic_request_refused,
        anthropic_count_request_to_anthropic,
        anthropic_count_request_to_openai,
    )
}


@pytest.mark.parametrize("path", golden.cases(GOLDEN), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    golden.check(path, KINDS)


def test_every_kind_has_a_golden_case() -> None:
    golden.check_every_kind_used(GOLDEN, KINDS)
