"""HotPath: POSTs to the model routes reach their handler directly; the rest goes on to FastAPI."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving.gateway import app as app_module
from serving.gateway.errors import GatewayError, NotFound
from serving.gateway.hotpath import HotPath
from serving.gateway.settings import parse_settings

Message = dict[str, Any]


class Inner:
    """The rest of the app: records that a request reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await Response(b"inner", 200)(scope, receive, send)


async def _exact(request: Request) -> Response:
    return JSONResponse({"hot": request.url.path})


async def _refused(request: Request) -> Response:
    raise NotFound("no such thing", param="model")


async def _under(rest: str, request: Request) -> Response:
    return JSONResponse({"rest": rest})


def _render(request: Request, exc: GatewayError) -> Response:
    return JSONResponse({"rendered": exc.message, "param": exc.param}, exc.status)


def _call(hot: HotPath, method: str, path: str) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    asyncio.run(hot(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def _hot(inner: Inner) -> HotPath:
    return HotPath(
        inner,
        exact={"/v1/x": _exact, "/v1/refused": _refused},
        prefixed=[("/v1beta/models/", _under)],
        render=_render,
    )


def test_post_to_an_exact_path_reaches_its_handler_not_the_app() -> None:
    inner = Inner()
    assert _call(_hot(inner), "POST", "/v1/x") == (200, b'{"hot":"/v1/x"}')
    assert inner.paths == []


def test_a_prefixed_path_hands_its_rest_to_the_handler() -> None:
    inner = Inner()
    status, body = _call(_hot(inner), "POST", "/v1beta/models/m:generateContent")
    assert (status, body) == (200, b'{"rest":"m:generateContent"}')
    assert inner.paths == []


def test_a_gateway_error_from_the_handler_is_rendered_once() -> None:
    status, body = _call(_hot(Inner()), "POST", "/v1/refused")
    assert (status, body) == (404, b'{"rendered":"no such thing","param":"model"}')


def test_other_methods_and_paths_go_on_to_the_app() -> None:
    inner = Inner()
    hot = _hot(inner)
    assert _call(hot, "GET", "/v1/x") == (200, b"inner")
    assert _call(hot, "POST", "/v1/other") == (200, b"inner")
    assert _call(hot, "POST", "/v1beta/other") == (200, b"inner")
    assert inner.paths == ["/v1/x", "/v1/other", "/v1beta/other"]


def test_every_hot_path_is_also_a_fastapi_post_route() -> None:
    """So the OpenAPI document and the 405s of other methods still come from FastAPI."""
    config = {
        "upstreams": [{"name": "up", "base_url": "http://127.0.0.1:9/v1"}],
        "routes": [{"model": "m", "targets": [{"upstream": "up", "model": "m"}]}],
    }
    app = app_module.create_app(parse_settings(config, "hotpath"))
    posts = {
        r.path for r in app.routes if isinstance(r, Route) and r.methods and "POST" in r.methods
    }
    assert set(app_module._HOT) <= posts
    for prefix, _ in app_module._HOT_PREFIXED:
        assert prefix + "{target:path}" in posts
