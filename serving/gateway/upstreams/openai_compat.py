"""OpenAI-compatible upstreams: vLLM engines and hosted OpenAI.

A pool of one or more endpoints; each request goes to the endpoint with the fewest requests in
flight (least outstanding requests), which keeps a slow engine from queueing more work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from serving.gateway import canonical as c
from serving.gateway.dialects.openai import stream as oai_stream
from serving.gateway.dialects.openai import translate as oai
from serving.gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from serving.gateway.settings import Upstream as UpstreamConfig
from serving.gateway.sse import iter_events
from serving.gateway.upstreams.base import (
    EventStream,
    RawCall,
    RawResponse,
    RawStream,
    UpstreamClient,
    error_from_response,
    map_transport_error,
    prime,
)


class OpenAICompatClient(UpstreamClient):
    dialect = "openai"

    def __init__(self, config: UpstreamConfig, http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._urls = config.urls
        self._inflight = [0] * len(self._urls)
        key = config.api_key()
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self._timeouts = config.timeouts

    def _pick(self) -> int:
        return min(range(len(self._urls)), key=self._inflight.__getitem__)

    @asynccontextmanager
    async def _open(self, path: str, body: bytes, *, stream: bool) -> AsyncIterator[httpx.Response]:
        """POST and yield the response once its headers arrived and its status is 2xx."""
        i = self._pick()
        self._inflight[i] += 1
        headers = {**self._headers, "content-type": "application/json"}
        request = self.http.build_request(
            "POST", self._urls[i] + path, content=body, headers=headers
        )
        response: httpx.Response | None = None
        try:
            try:
                async with asyncio.timeout(self._timeouts.first_byte):
                    response = await self.http.send(request, stream=True)
            except TimeoutError as exc:
                wait = self._timeouts.first_byte
                raise UpstreamTimeout(
                    f"upstream {self.name!r} sent no response within {wait:g}s",
                    upstream=self.name,
                ) from exc
            except httpx.HTTPError as exc:
                raise map_transport_error(exc, self.name) from exc
            if response.status_code >= 300:
                raw = await self._read(response)
                raise error_from_response(response.status_code, raw, response.headers, self.name)
            yield response
        finally:
            self._inflight[i] -= 1
            if response is not None:
                await response.aclose()

    async def _read(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, self.name) from exc

    async def _post_json(self, path: str, body: bytes) -> tuple[bytes, dict[str, Any], str]:
        try:
            async with asyncio.timeout(self._timeouts.total):
                async with self._open(path, body, stream=False) as response:
                    raw = await self._read(response)
                    ctype = response.headers.get("content-type", "")
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self.name!r} timed out", upstream=self.name) from exc
        if "json" not in ctype:
            raise UpstreamError(f"upstream {self.name!r} answered with content type {ctype!r}")
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UpstreamError(f"upstream {self.name!r} sent malformed JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamError(f"upstream {self.name!r} sent JSON that is not an object")
        return raw, parsed, ctype

    async def complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        body = oai.request_from_canonical(req, model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        _, parsed, _ = await self._post_json("/chat/completions", oai.dumps(body).encode())
        return oai.response_to_canonical(parsed)

    async def stream(self, req: c.ChatRequest, model: str) -> EventStream:
        body = oai.request_from_canonical(req, model)
        return await prime(self._events(oai.dumps(body).encode()))

    async def _events(self, body: bytes) -> AsyncIterator[c.StreamEvent]:
        decoder = oai_stream.ChunkDecoder()
        try:
            async with self._open("/chat/completions", body, stream=True) as response:
                _check_stream_type(response, self.name)
                async for sse in iter_events(self._chunks(response)):
                    if sse.data == "[DONE]":
                        break
                    for event in decoder.feed(oai_stream.decode_data(sse.data)):
                        yield event
                        if isinstance(event, c.Failure):
                            return
        except GatewayError as exc:
            yield c.Failure(exc)
            return
        for event in decoder.done():
            yield event

    async def _chunks(self, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, self.name) from exc

    async def forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        body = call.body
        if call.parsed.get("model") != model:
            body = oai.dumps({**call.parsed, "model": model}).encode()
        if not call.stream:
            raw, parsed, ctype = await self._post_json(call.path, body)
            return RawResponse(200, raw, ctype, oai.usage_to_canonical(parsed.get("usage")))
        return await self._forward_stream(call.path, body)

    async def _forward_stream(self, path: str, body: bytes) -> RawStream:
        cm = self._open(path, body, stream=True)
        response = await cm.__aenter__()
        try:
            _check_stream_type(response, self.name)
            chunks = self._chunks(response)
            first = await anext(chunks)
        except BaseException as exc:
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, StopAsyncIteration):
                raise UpstreamError(f"upstream {self.name!r} sent an empty stream") from exc
            raise

        async def rest() -> AsyncIterator[bytes]:
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await cm.__aexit__(None, None, None)

        return RawStream(first, rest(), response)

    async def ready(self) -> bool:
        root = self._urls[0].removesuffix("/v1")
        try:
            response = await self.http.get(root + self.config.health_path, timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code < 300


def _check_stream_type(response: httpx.Response, name: str) -> None:
    ctype = response.headers.get("content-type", "")
    if "text/event-stream" not in ctype:
        raise UpstreamError(f"upstream {name!r} answered a stream request with {ctype!r}")
