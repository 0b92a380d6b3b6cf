"""Client input of every kind gets the route's own dialect's 400, never a 5xx or plain text.

Two parts: named cases that once reached plain-text 500s (nesting 1,000 deep, a lone UTF-16
surrogate, wrong types, count_tokens with an extra field, bytes that are not UTF-8), on every
POST route; then a bounded property-based fuzz over the request schemas the gateway publishes
in its own OpenAPI document. The upstream is a fake on 127.0.0.1 that answers any request in
the form it asked for, so a 5xx can only come from the gateway's handling of the input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import chat_completion, chat_stream
from tests.support.schema_strategy import from_schema
from tests.support.servers import serve

MODEL = "smollm2"

# (dialect, path) for every POST route that reads a JSON body
ROUTES = [
    ("openai", "/v1/chat/completions"),
    ("openai", "/v1/completions"),
    ("openai", "/v1/embeddings"),
    ("anthropic", "/v1/messages"),
    ("anthropic", "/v1/messages/count_tokens"),
    ("gemini", f"/v1beta/models/{MODEL}:generateContent"),
    ("gemini", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"),
    ("gemini", f"/v1beta/models/{MODEL}:countTokens"),
]


async def _answer(request: Request) -> Response:
    """Whatever the gateway asks, in the form it asked for."""
    path = request.url.path
    if request.method == "GET":
        return Response(b"", 200)
    if path.endswith("/tokenize"):
        return JSONResponse({"count": 7})
    if path.endswith("/embeddings"):
        return JSONResponse({"object": "list", "data": [{"embedding": [0.1]}]})
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("stream") is True:

        async def frames() -> Any:
            for frame in chat_stream(("ok", "!")):
                yield frame

        return StreamingResponse(frames(), media_type="text/event-stream")
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return JSONResponse({"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]})
    return JSONResponse(chat_completion("ok"))


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    upstream = Starlette(routes=[Route("/{p:path}", _answer, methods=["GET", "POST"])])
    with serve(upstream) as up:
        settings = parse_settings(
            {
                "upstreams": [{"name": "fake", "base_url": up + "/v1"}],
                "routes": [{"model": MODEL, "targets": [{"upstream": "fake", "model": "m"}]}],
            },
            "input",
        )
        with serve(create_app(settings)) as url:
            yield url


def assert_dialect_error(dialect: str, response: httpx.Response) -> None:
    """A JSON error in the dialect's envelope, with the request id header its SDK reads."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    if dialect == "openai":
        error = body["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        assert error["code"] is None or isinstance(error["code"], str)
        assert response.headers["x-request-id"].startswith("req_")
    elif dialect == "anthropic":
        assert body["type"] == "error" and body["error"]["message"]
        assert body["request_id"] == response.headers["request-id"]
    else:
        assert body["error"]["code"] == response.status_code
        assert body["error"]["status"] and body["error"]["message"]
        assert response.headers["x-request-id"].startswith("req_")


DEEP = b'{"model": "smollm2", "messages": ' + b"[" * 1000 + b"]" * 1000 + b"}"
NAMED_BODIES = {
    "nested_1000_deep": DEEP,
    "lone_surrogate": (
        b'{"model": "smollm2", "max_tokens": 5, "messages": [{"role": "user", "content":'
        b' "\\ud800"}], "contents": [{"parts": [{"text": "\\ud800"}]}], "input": "\\udfff"}'
    ),
    "wrong_types": b'{"model": 5, "messages": "x", "max_tokens": "many", "contents": 3}',
    "not_utf8": b'{"model": "smollm2", "messages": "\xff\xfe"}',
    "not_an_object": b"[1, 2, 3]",
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(NAMED_BODIES))
@pytest.mark.parametrize(("dialect", "path"), ROUTES)
def test_bad_input_is_the_dialects_400(
    gateway_url: str, dialect: str, path: str, name: str
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        response = client.post(path, content=NAMED_BODIES[name])
        assert response.status_code == 400, response.text
        assert_dialect_error(dialect, response)
        # The keep-alive connection survived: the next request on it is answered.
        assert client.get("/health").status_code == 200


def test_count_tokens_with_a_generation_field_is_a_400(gateway_url: str) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 2,
    }
    response = httpx.post(gateway_url + "/v1/messages/count_tokens", json=body, timeout=10)
    assert response.status_code == 400
    assert_dialect_error("anthropic", response)
    assert "temperature" in response.json()["error"]["message"]


def test_wrong_method_is_a_405_with_allow(gateway_url: str) -> None:
    response = httpx.get(gateway_url + "/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert_dialect_error("openai", response)
    response = httpx.delete(gateway_url + "/v1/messages")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert_dialect_error("anthropic", response)


# ---- property-based: bodies drawn from the gateway's own OpenAPI request schemas ---------------


def _schemas(url: str) -> dict[str, Any]:
    doc = httpx.get(url + "/openapi.json").json()
    components = doc["components"]
    out = {}
    for path, item in doc["paths"].items():
        post = item.get("post")
        if post is None:
            continue
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        out[path] = {**schema, "components": components}
    return out


def test_every_post_route_documents_its_body_and_errors(gateway_url: str) -> None:
    doc = httpx.get(gateway_url + "/openapi.json").json()
    posts = {p: item["post"] for p, item in doc["paths"].items() if "post" in item}
    assert set(posts) >= {
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1beta/models/{target}",
    }
    for path, post in posts.items():
        # only a cancel reads no body (the SDK sends none)
        assert post["requestBody"]["required"] is not path.endswith("/cancel"), path
        for status in ("400", "404", "405", "429", "500", "502", "503"):
            assert "$ref" in post["responses"][status]["content"]["application/json"]["schema"]


def _with_model(draw_model: bool, data: Any) -> Any:
    """Half the bodies name a served model, so they get past routing into translation."""
    if draw_model and isinstance(data, dict):
        return {**data, "model": MODEL}
    return data


FUZZ_ROUTES = [
    ("openai", "/v1/chat/completions", "/v1/chat/completions"),
    ("openai", "/v1/responses", "/v1/responses"),
    ("anthropic", "/v1/messages", "/v1/messages"),
    ("anthropic", "/v1/messages/count_tokens", "/v1/messages/count_tokens"),
    ("gemini", f"/v1beta/models/{MODEL}:generateContent", "/v1beta/models/{target}"),
    ("gemini", f"/v1beta/models/{MODEL}:countTokens", "/v1beta/models/{target}"),
]


@pytest.mark.parametrize(("dialect", "path", "documented"), FUZZ_ROUTES)
def test_fuzzed_bodies_never_get_a_5xx(
    gateway_url: str, dialect: str, path: str, documented: str
) -> None:
    schema = _schemas(gateway_url)[documented]
    bodies = st.one_of(
        st.tuples(st.booleans(), from_schema(schema)).map(lambda t: _with_model(*t)),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=8), inner, max_size=3)
            ),
            max_leaves=8,
        ),
    )
    client = httpx.Client(base_url=gateway_url, timeout=20)
    statuses: list[int] = []

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(bodies)
    def check(body: Any) -> None:
        response = client.post(path, content=json.dumps(body))
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            assert_dialect_error(dialect, response)

    with client:
        check()
    # The fuzz reached past validation into translation and dispatch, not only 400s.
    assert 200 in statuses and any(400 <= s < 500 for s in statuses), sorted(set(statuses))
