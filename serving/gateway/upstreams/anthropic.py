"""Hosted Anthropic (and anything that speaks the Messages API) as an upstream.

`base_url` includes `/v1`, the same convention as OpenAI-compatible upstreams, so the paths a
client used (`/messages`, `/messages/count_tokens`) are relative to it unchanged:
`base_url: https://api.anthropic.com/v1`.
"""

from __future__ import annotations

from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic import stream as ant_stream
from serving.gateway.dialects.anthropic import translate as ant
from serving.gateway.dialects.anthropic.grammar import AnthropicGrammar
from serving.gateway.jsoncodec import dumpb
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream
from serving.gateway.upstreams.http import HTTPUpstream, with_model

API_VERSION = "2023-06-01"


class AnthropicClient(HTTPUpstream):
    dialect = "anthropic"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        body = ant.request_from_canonical(req, model)
        body.pop("stream", None)
        _, parsed, _ = await self.post_json("/messages", dumpb(body))
        return ant.response_to_canonical(parsed)

    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream:
        body = dumpb({**ant.request_from_canonical(req, model), "stream": True})
        return await self.primed(self.sse_events("/messages", body, ant_stream.EventDecoder()))

    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        body = with_model(call, model)
        return await self.relay(call.path, body, call.stream, AnthropicGrammar())

    def usage_of(self, body: dict[str, Any]) -> c.Usage:
        return ant.usage_to_canonical(body.get("usage"))

    def answer_ok(self, url_path: str, body: dict[str, Any]) -> bool:
        if url_path.endswith("/count_tokens"):
            return isinstance(body.get("input_tokens"), int)
        return body.get("type") == "message" and isinstance(body.get("content"), list)

    async def _count_tokens(self, req: c.ChatRequest, model: str) -> int:
        body = ant.count_request_from_canonical(req, model)
        _, parsed, _ = await self.post_json("/messages/count_tokens", dumpb(body))
        return self.int_field(parsed, "input_tokens", "count_tokens")

    async def ready(self) -> bool:
        return await self.get_ok(self._urls[0] + "/models")
