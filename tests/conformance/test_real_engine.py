"""Both official SDKs → the gateway → the real vLLM CPU engine with the embedded SmolLM2 model.

One engine per session (the `engine` fixture in tests/conftest.py starts it with `serving
launch`); one gateway per module in front of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.servers import serve

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def gateway_url(engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings = parse_settings(
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
                    "model": "smollm2",
                    "aliases": ["default"],
                    "targets": [{"upstream": "embedded", "model": engine.served_model}],
                }
            ],
        }
    )
    with serve(create_app(settings)) as url:
        yield url


def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="local", max_retries=0, timeout=300)


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)


def test_openai_sdk_answers(gateway_url: str) -> None:
    out = openai_client(gateway_url).chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        max_tokens=32,
        temperature=0,  # type: ignore[arg-type]
    )
    assert "Paris" in (out.choices[0].message.content or "")
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > 5


def test_openai_sdk_streams(gateway_url: str) -> None:
    chunks = list(
        openai_client(gateway_url).chat.completions.create(
            model="default",
            messages=QUESTION,
            max_tokens=32,
            temperature=0,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_sdk_answers(gateway_url: str) -> None:
    msg = anthropic_client(gateway_url).messages.create(
        model="smollm2",
        max_tokens=32,
        messages=QUESTION,
        extra_body=GREEDY,  # type: ignore[arg-type]
    )
    assert msg.content[0].type == "text" and "Paris" in msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 5 and msg.usage.output_tokens > 0


def test_anthropic_sdk_streams_in_order(gateway_url: str) -> None:
    client = anthropic_client(gateway_url)
    plain = client.messages.create(
        model="smollm2",
        max_tokens=32,
        messages=QUESTION,
        extra_body=GREEDY,  # type: ignore[arg-type]
    )
    with client.messages.stream(
        model="smollm2",
        max_tokens=32,
        messages=QUESTION,
        extra_body=GREEDY,  # type: ignore[arg-type]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert [e.index for e in events if e.type == "content_block_start"] == [0]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.output_tokens == final.usage.output_tokens > 0
    assert "Paris" in final.content[0].text  # type: ignore[union-attr]
    assert final.content[0].text == plain.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_anthropic_stop_sequence_from_the_engine(gateway_url: str) -> None:
    msg = anthropic_client(gateway_url).messages.create(
        model="smollm2",
        max_tokens=32,
        messages=QUESTION,
        stop_sequences=["Paris"],
        extra_body=GREEDY,  # type: ignore[arg-type]
    )
    assert msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "Paris"
    assert "Paris" not in msg.content[0].text  # type: ignore[union-attr]


def test_unknown_model_through_the_engine_route(gateway_url: str) -> None:
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(gateway_url).messages.create(
            model="no-such-model",
            max_tokens=8,
            messages=QUESTION,  # type: ignore[arg-type]
        )
