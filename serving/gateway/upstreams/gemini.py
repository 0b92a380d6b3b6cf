"""Gemini (the Google AI `generateContent` API) as an upstream.

`base_url` includes the API version, as the other dialects' base URLs do:
`base_url: https://generativelanguage.googleapis.com/v1beta`. The model travels in the path
(`/models/{model}:generateContent`), so a forwarded call has its path rebuilt for the target.
"""

from __future__ import annotations

from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.gemini import stream as gem_stream
from serving.gateway.dialects.gemini import translate as gem
from serving.gateway.dialects.gemini.grammar import GeminiGrammar
from serving.gateway.jsoncodec import dumpb
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream
from serving.gateway.upstreams.http import HTTPUpstream


class GeminiClient(HTTPUpstream):
    dialect = "gemini"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        body = dumpb(gem.request_from_canonical(req))
        _, parsed, _ = await self.post_json(f"/models/{model}:generateContent", body)
        return gem.response_to_canonical(parsed)

    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream:
        body = dumpb(gem.request_from_canonical(req))
        path = f"/models/{model}:streamGenerateContent?alt=sse"
        return await self.primed(self.sse_events(path, body, gem_stream.ChunkDecoder()))

    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        method = call.path.rpartition(":")[2]
        path = f"/models/{model}:{method}" + (f"?{call.query}" if call.query else "")
        return await self.relay(path, call.body, call.stream, GeminiGrammar())

    def usage_of(self, body: dict[str, Any]) -> c.Usage:
        return gem.usage_to_canonical(body.get("usageMetadata"))

    def answer_ok(self, url_path: str, body: dict[str, Any]) -> bool:
        if url_path.endswith(":countTokens"):
            return isinstance(body.get("totalTokens"), int)
        return isinstance(body.get("candidates"), list) or "promptFeedback" in body

    async def _count_tokens(self, req: c.ChatRequest, model: str) -> int:
        """A whole generateContentRequest, so the system instruction and tools count too."""
        inner = {"model": f"models/{model}", **gem.request_from_canonical(req)}
        body = dumpb({"generateContentRequest": inner})
        _, parsed, _ = await self.post_json(f"/models/{model}:countTokens", body)
        return self.int_field(parsed, "totalTokens", "countTokens")

    async def ready(self) -> bool:
        return await self.get_ok(self._urls[0] + "/models")
