"""Error parity: each client dialect's SDK raises its own error class for failures the gateway
produces itself and for failures of an upstream of any dialect, before a stream starts and
in the middle of one. SDK retries are off (`max_retries=0`; google-genai does not retry unless
asked), so each error is seen exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support import fake_upstream as f
from tests.support.fake_upstream import Reply
from tests.support.matrix import (
    CLIENT_KEY,
    DIALECTS,
    MAX_BODY,
    Matrix,
    error_reply,
    matrix_gateway,
)


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    with matrix_gateway() as m:
        yield m


def ask(
    dialect: str,
    url: str,
    model: str,
    *,
    stream: bool = False,
    key: str = CLIENT_KEY,
    prompt: str = "Hi",
    extra: dict[str, Any] | None = None,
) -> str:
    """One request through the dialect's SDK, consumed to the end; the text it answered."""
    extra = extra or {}
    if dialect == "openai":
        oai = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        messages: Any = [{"role": "user", "content": prompt}]
        if not stream:
            r = oai.chat.completions.create(model=model, messages=messages, **extra)
            return r.choices[0].message.content or ""
        chunks = oai.chat.completions.create(model=model, messages=messages, stream=True, **extra)
        return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    if dialect == "anthropic":
        ant = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 50, **extra}
        kwargs["messages"] = [{"role": "user", "content": prompt}]
        if not stream:
            m = ant.messages.create(**kwargs)
        else:
            with ant.messages.stream(**kwargs) as events:
                m = events.get_final_message()
        return "".join(b.text for b in m.content if b.type == "text")
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=url))
    config = types.GenerateContentConfig(**extra) if extra else None
    if not stream:
        return (
            client.models.generate_content(model=model, contents=prompt, config=config).text or ""
        )
    chunks = client.models.generate_content_stream(model=model, contents=prompt, config=config)
    return "".join(ch.text or "" for ch in chunks)


# The SDK class each dialect raises for a status, and (Gemini) the status it sees.
OPENAI_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    404: openai.NotFoundError,
    413: openai.APIStatusError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    502: openai.InternalServerError,
    503: openai.InternalServerError,
    529: openai.InternalServerError,
}
ANTHROPIC_CLASSES: dict[int, type[anthropic.APIStatusError]] = {
    400: anthropic.BadRequestError,
    401: anthropic.AuthenticationError,
    404: anthropic.NotFoundError,
    413: anthropic.RequestTooLargeError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    502: anthropic.InternalServerError,
    503: anthropic.ServiceUnavailableError,  # a subclass of InternalServerError
    529: anthropic.OverloadedError,
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
GEMINI_STATUS = {
    400: (400, "INVALID_ARGUMENT"),
    401: (401, "UNAUTHENTICATED"),
    404: (404, "NOT_FOUND"),
    413: (413, "INVALID_ARGUMENT"),
    429: (429, "RESOURCE_EXHAUSTED"),
    500: (500, "INTERNAL"),
    502: (502, "UNAVAILABLE"),
    503: (503, "UNAVAILABLE"),
    529: (503, "UNAVAILABLE"),  # Gemini has no 529: overload is 503 UNAVAILABLE
}
RETRYABLE = {429, 500, 502, 503, 529}


def assert_sdk_error(dialect: str, status: int, exc: BaseException) -> None:
    if dialect == "openai":
        assert type(exc) is OPENAI_CLASSES[status]
        assert isinstance(exc, openai.APIStatusError)
        assert exc.status_code == status
        assert exc.message
    elif dialect == "anthropic":
        assert type(exc) is ANTHROPIC_CLASSES[status]
        assert isinstance(exc, anthropic.APIStatusError)
        assert exc.status_code == status
        assert isinstance(exc.body, dict)
        assert exc.body["error"]["type"] == ANTHROPIC_TYPES[status]
        assert exc.response.headers["request-id"].startswith("req_")
        should_retry = exc.response.headers.get("x-should-retry")
        assert should_retry == (None if status in RETRYABLE else "false")
    else:
        code, name = GEMINI_STATUS[status]
        expected = genai_errors.ClientError if code < 500 else genai_errors.ServerError
        assert type(exc) is expected
        assert isinstance(exc, genai_errors.APIError)
        assert (exc.code, exc.status) == (code, name)
        assert exc.message


UPSTREAM_CASES = [
    pytest.param(client, upstream, status, id=f"{client}<-{upstream}-{status}")
    for client in DIALECTS
    for upstream in DIALECTS
    for status in (400, 401, 404, 413, 429, 500, 529)
]


@pytest.mark.parametrize(("client", "upstream", "status"), UPSTREAM_CASES)
def test_upstream_error_becomes_the_clients_own(
    matrix: Matrix, client: str, upstream: str, status: int
) -> None:
    reply = error_reply(upstream, status, f"upstream says {status}")
    if status == 429:
        reply.headers["retry-after"] = "7"
    matrix.fakes[upstream].script(reply)

    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, f"via-{upstream}")

    # The upstream refused the gateway's key: the client's own key is fine, so a 502.
    assert_sdk_error(client, 502 if status == 401 else status, caught.value)
    if status in (400, 404, 413):  # the client's fault: the upstream's message says what to fix
        assert f"upstream says {status}" in str(caught.value)
    else:  # the upstream's business with the gateway: the gateway's own words, naming it
        assert "upstream says" not in str(caught.value)
        assert f"upstream '{upstream}'" in str(caught.value)
    if status == 429:
        response = caught.value.response  # type: ignore[attr-defined]
        assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize("client", DIALECTS)
@pytest.mark.parametrize("upstream", DIALECTS)
def test_error_before_a_stream_starts_is_an_http_error(
    matrix: Matrix, client: str, upstream: str
) -> None:
    matrix.fakes[upstream].script(error_reply(upstream, 529, "busy"))
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, f"via-{upstream}", stream=True)
    assert_sdk_error(client, 529, caught.value)


def truncated_stream(dialect: str) -> Reply:
    """A stream that closes cleanly but never finishes (no [DONE]/message_stop/finishReason)."""
    if dialect == "openai":
        return Reply.sse(f.chat_stream()[:2])
    if dialect == "anthropic":
        return Reply.sse(f.anthropic_stream(finish=False))
    return Reply.sse(f.gemini_stream()[:2])


STREAM_ERRORS: dict[str, type[BaseException]] = {
    "openai": openai.APIError,
    "anthropic": anthropic.APIStatusError,  # an in-stream error event, raised on the 200
    "gemini": genai_errors.ServerError,
}


@pytest.mark.parametrize("client", DIALECTS)
@pytest.mark.parametrize("upstream", DIALECTS)
def test_stream_that_breaks_ends_with_the_clients_error_event(
    matrix: Matrix, client: str, upstream: str
) -> None:
    matrix.fakes[upstream].script(truncated_stream(upstream))
    with pytest.raises(STREAM_ERRORS[client]) as caught:
        ask(client, matrix.url, f"via-{upstream}", stream=True)
    assert "ended before" in str(caught.value)


# ---- errors the gateway produces itself ------------------------------------------------------

BAD_REQUEST: dict[str, tuple[str, dict[str, Any]]] = {
    # n > 1 cannot be expressed for a non-OpenAI upstream
    "openai": ("via-anthropic", {"n": 2}),
    "anthropic": ("via-openai", {"extra_body": {"temperature": 1.5}}),  # Messages allows 0..1
    # candidateCount > 1 cannot be expressed for a non-Gemini upstream
    "gemini": ("via-openai", {"candidate_count": 2}),
}


@pytest.mark.parametrize("client", DIALECTS)
def test_gateway_bad_request(matrix: Matrix, client: str) -> None:
    model, extra = BAD_REQUEST[client]
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, model, extra=extra)
    assert_sdk_error(client, 400, caught.value)


@pytest.mark.parametrize("client", DIALECTS)
def test_gateway_wrong_key(matrix: Matrix, client: str) -> None:
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, "via-openai", key="wrong")
    assert_sdk_error(client, 401, caught.value)


@pytest.mark.parametrize("client", DIALECTS)
def test_gateway_unknown_model(matrix: Matrix, client: str) -> None:
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, "no-such-model")
    assert_sdk_error(client, 404, caught.value)
    assert "no-such-model" in str(caught.value)


@pytest.mark.parametrize("client", DIALECTS)
def test_gateway_body_too_large(matrix: Matrix, client: str) -> None:
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, "via-openai", prompt="x" * (MAX_BODY + 1))
    assert_sdk_error(client, 413, caught.value)


@pytest.mark.parametrize("client", DIALECTS)
def test_gateway_upstream_unreachable(matrix: Matrix, client: str) -> None:
    with pytest.raises(Exception) as caught:
        ask(client, matrix.url, "dead")
    assert_sdk_error(client, 503, caught.value)
