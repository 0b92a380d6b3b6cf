"""The app factory: one `Gateway` per app on `app.state`, the routes, the request lifecycle,
and errors rendered in each path's dialect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from serving.gateway import admin, errors, models, openapi, ops
from serving.gateway.deps import authenticate
from serving.gateway.dialects.anthropic import router as anthropic
from serving.gateway.dialects.gemini import router as gemini
from serving.gateway.dialects.openai import router as openai
from serving.gateway.dialects.responses import router as responses
from serving.gateway.endpoint import DialectAdapter
from serving.gateway.gatekeeper import GateMiddleware
from serving.gateway.hotpath import Handler, HotPath, PrefixHandler
from serving.gateway.lifecycle import SCOPE_KEY, Lifecycle, Renderer, record_of
from serving.gateway.runtime import Gateway
from serving.gateway.settings import Settings

log = logging.getLogger("serving.gateway")

# Path prefix -> the dialect whose envelope and request-id header that path uses; first match.
_DIALECTS: tuple[tuple[str, DialectAdapter], ...] = (
    ("/v1/messages", anthropic.DIALECT),
    ("/v1/responses", responses.DIALECT),
    ("/v1beta/", gemini.DIALECT),
    ("/v1/models/", gemini.DIALECT),  # Gemini's /v1 variant; OpenAI only lists /v1/models
    ("/", openai.DIALECT),
)
# The header each dialect's SDK reads the request id from.
_REQUEST_ID_HEADERS = {"anthropic": b"request-id"}


def dialect_for(path: str) -> tuple[str, Renderer]:
    adapter = next(a for prefix, a in _DIALECTS if path.startswith(prefix))
    return adapter.name, adapter.render_error


def error_frame_for(path: str) -> Callable[[Exception], bytes]:
    """The stream error event of the dialect a path speaks."""
    return next(a for prefix, a in _DIALECTS if path.startswith(prefix)).grammar.error_frame


def request_id_header(dialect: str) -> bytes:
    return _REQUEST_ID_HEADERS.get(dialect, b"x-request-id")


def _http_error(exc: HTTPException) -> errors.GatewayError:
    cls = {
        404: errors.NotFound,
        401: errors.AuthenticationFailed,
        413: errors.RequestTooLarge,
    }.get(exc.status_code, errors.InvalidRequest)
    return cls(str(exc.detail), status=exc.status_code)


def _create_response(request: Request) -> Awaitable[Response]:
    return responses.create_response(request, authenticate(request))


# The POST routes HotPath calls without FastAPI's routing (they take only the request).
_HOT: dict[str, Handler] = {
    "/v1/chat/completions": openai.chat_completions,
    "/v1/completions": openai.completions,
    "/v1/embeddings": openai.embeddings,
    "/v1/messages": anthropic.create_message,
    "/v1/messages/count_tokens": anthropic.count_message_tokens,
    "/v1/responses": _create_response,
}
_HOT_PREFIXED: tuple[tuple[str, PrefixHandler], ...] = (
    ("/v1beta/models/", gemini.model_method),
    ("/v1/models/", gemini.model_method),
)


def create_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or Gateway(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        yield
        await gw.aclose()

    app = FastAPI(title="serving gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw
    app.include_router(ops.router)
    app.include_router(models.router)
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    app.include_router(gemini.router)
    app.include_router(responses.router)
    if settings.admin.enabled:
        app.include_router(admin.router)

    def render(request: Request, exc: errors.GatewayError) -> Response:
        record = record_of(request) if SCOPE_KEY in request.scope else None
        if exc.status >= 500 and not isinstance(exc, errors.ClientClosed):
            log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
        rid = record.request_id if record is not None else ""
        response = dialect_for(request.url.path)[1](exc, rid)
        if record is not None:
            record.failed(exc, response.status_code)  # the status sent (Gemini has no 529)
        return response

    app.add_middleware(HotPath, exact=_HOT, prefixed=_HOT_PREFIXED, render=render)  # innermost
    app.add_middleware(
        GateMiddleware, keeper=gw.keeper, dialect_for=dialect_for, frame_for=error_frame_for
    )
    app.add_middleware(  # outermost: the gate's refusals are counted and logged too
        Lifecycle, metrics=gw.metrics, dialect_for=dialect_for, header_for=request_id_header
    )
    openapi.install(app)

    @app.exception_handler(errors.GatewayError)
    async def gateway_error(request: Request, exc: errors.GatewayError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render(request, errors.InvalidRequest(str(exc)))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = render(request, _http_error(exc))
        if exc.headers:  # e.g. 405's `Allow`
            response.headers.update(exc.headers)
        return response

    return app
