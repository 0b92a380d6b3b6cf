"""The app factory: one `Gateway` per app on `app.state`, routers, and per-dialect errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from serving.gateway import admin, errors, ops
from serving.gateway.dialects.anthropic import router as anthropic
from serving.gateway.dialects.gemini import router as gemini
from serving.gateway.dialects.openai import passthrough as openai_passthrough
from serving.gateway.dialects.openai import router as openai
from serving.gateway.policy.caller import PrivacyMiddleware
from serving.gateway.runtime import Gateway
from serving.gateway.settings import Settings

log = logging.getLogger("serving.gateway")

Renderer = Callable[[errors.GatewayError], Response]

# Path prefix -> the dialect whose envelope errors on that path use; the first match wins.
_RENDERERS: tuple[tuple[str, Renderer], ...] = (
    ("/v1/messages", anthropic.render_error),
    ("/v1beta/", gemini.render_error),
    ("/v1/models/", gemini.render_error),  # Gemini's /v1 variant; OpenAI only lists /v1/models
    ("/", openai.render_error),
)


def render_for(path: str) -> Renderer:
    return next(render for prefix, render in _RENDERERS if path.startswith(prefix))


def _http_error(exc: HTTPException) -> errors.GatewayError:
    cls = {404: errors.NotFound, 401: errors.AuthenticationFailed, 413: errors.RequestTooLarge}
    return cls.get(exc.status_code, errors.InvalidRequest)(str(exc.detail), status=exc.status_code)


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
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    app.include_router(gemini.router)
    app.include_router(openai_passthrough.router)
    if settings.admin.enabled:
        app.include_router(admin.router)
    # Privacy marks from headers and API keys, for every dialect's route (see policy/caller.py).
    app.add_middleware(PrivacyMiddleware, policy=gw.dispatcher.privacy, caller=gw.dispatcher.caller)

    @app.exception_handler(errors.GatewayError)
    async def gateway_error(request: Request, exc: errors.GatewayError) -> Response:
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
        return render_for(request.url.path)(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return render_for(request.url.path)(errors.InvalidRequest(str(exc)))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return render_for(request.url.path)(_http_error(exc))

    return app
