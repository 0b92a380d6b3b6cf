"""Same-dialect streams are relayed byte for byte, yet their usage still reaches the metrics
(tokens and cost): the gateway reads it from the frames that carry it, in each dialect."""

from __future__ import annotations

import re
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam
from google import genai
from google.genai import types
from openai.types.chat import ChatCompletionMessageParam

from tests.support.matrix import CLIENT_KEY, Matrix, matrix_gateway, text_reply


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    with matrix_gateway() as m:
        yield m


def _stream(matrix: Matrix, dialect: str) -> str:
    """Stream one answer from the same-dialect route; return the text the client saw."""
    if dialect == "openai":
        question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        client = openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        chunks = client.chat.completions.create(
            model="via-openai",
            messages=question,
            stream=True,
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if dialect == "anthropic":
        aquestion: list[MessageParam] = [{"role": "user", "content": "hi"}]
        aclient = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
        with aclient.messages.stream(
            model="via-anthropic",
            max_tokens=16,
            messages=aquestion,
        ) as stream:
            return "".join(stream.text_stream)
    gclient = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=matrix.url))
    return "".join(
        chunk.text or ""
        for chunk in gclient.models.generate_content_stream(model="via-gemini", contents="hi")
    )


def _tokens(matrix: Matrix, dialect: str, direction: str) -> float:
    text = httpx.get(matrix.url + "/metrics").text
    target = f"{dialect}/{dialect}-upstream-model"
    pattern = (
        rf'serving_tokens_total\{{direction="{direction}",route="via-{dialect}",'
        rf'target="{re.escape(target)}"\}} ([0-9.]+)'
    )
    found = re.search(pattern, text)
    assert found is not None, f"no {direction} token count for via-{dialect} in /metrics"
    return float(found.group(1))


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_relayed_stream_usage_is_counted(matrix: Matrix, dialect: str) -> None:
    matrix.fakes[dialect].script(text_reply(dialect, stream=True))
    assert _stream(matrix, dialect) == "Hello!"
    assert _tokens(matrix, dialect, "input") == 11
    assert _tokens(matrix, dialect, "output") == 3
