"""What the transport says about a request before its body is read: whether the caller marked
it private (a header, or the API key's policy).

`PrivacyMiddleware` computes it once per HTTP request and sets it in the dispatcher's context
variable, so every dialect's router is covered without handing it along. A pure ASGI middleware
(not BaseHTTPMiddleware): the endpoint runs in the same task, so the variable is visible there.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.gateway.policy.privacy import PrivacyPolicy


@dataclass(frozen=True, slots=True)
class Caller:
    private: str | None = None  # "header" or "key" when the caller marked the request private


def presented_key(headers: Headers, query: bytes) -> str | None:
    """The client's key as each dialect's SDK sends it: bearer token, `x-api-key`,
    `x-goog-api-key`, or Gemini's `?key=` query parameter."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    key = headers.get("x-api-key") or headers.get("x-goog-api-key")
    if key is None and b"key=" in query:
        values = parse_qs(query.decode("latin-1")).get("key")
        key = values[0] if values else None
    return key


class PrivacyMiddleware:
    def __init__(
        self, app: ASGIApp, *, policy: PrivacyPolicy, caller: ContextVar[Caller | None]
    ) -> None:
        self.app = app
        self._policy = policy
        self._caller = caller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = presented_key(headers, scope.get("query_string", b""))
        token = self._caller.set(Caller(self._policy.marked(headers, key)))
        try:
            await self.app(scope, receive, send)
        finally:
            self._caller.reset(token)
