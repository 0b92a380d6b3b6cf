"""The generation and counting routes, called straight from the ASGI stack.

Every API request crosses FastAPI's per-route machinery: the exception middleware, the
dependency exit stack, the router's scan of every route's pattern, the request wrapper and the
dependency solver. The routes that carry model traffic need none of it (they take the request
and nothing else), and skipping those layers cut the gateway's CPU per request at concurrency 1
by about a tenth (docs/benchmarks.md, round 3). `HotPath` is the innermost middleware: a POST to
one of its paths goes to its handler, a `GatewayError` the handler raises is rendered by the
app's one renderer, and everything else (other methods and paths, the docs, 404s and 405s)
goes on through FastAPI as before. The routes stay registered with FastAPI too, so the OpenAPI
document and method checks are unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.gateway.errors import GatewayError

Handler = Callable[[Request], Awaitable[Response]]
# For a path under a prefix: the rest of the path (e.g. Gemini's `model:method`), the request.
PrefixHandler = Callable[[str, Request], Awaitable[Response]]
Render = Callable[[Request, GatewayError], Response]


class HotPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        exact: Mapping[str, Handler],
        prefixed: Sequence[tuple[str, PrefixHandler]],
        render: Render,
    ) -> None:
        self.app = app
        self._exact = dict(exact)
        self._prefixed = tuple(prefixed)
        self._render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        handler = self._find(scope["path"])
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = self._render(request, exc)
        await response(scope, receive, send)

    def _find(self, path: str) -> Handler | None:
        handler = self._exact.get(path)
        if handler is not None:
            return handler
        for prefix, under in self._prefixed:
            if path.startswith(prefix):
                return functools.partial(under, path[len(prefix) :])
        return None
