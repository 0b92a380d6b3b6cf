"""An upstream that speaks only the OpenAI Responses API (dialect `responses`): models served
on `/responses` alone. Other dialects' requests reach it through the canonical model; nothing
is stored there (`store: false`), since the gateway keeps conversations itself.

`base_url` includes `/v1`, as for `openai` upstreams: `base_url: https://api.openai.com/v1`.
"""

from __future__ import annotations

from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.responses import stream as rs
from serving.gateway.dialects.responses import translate as rt
from serving.gateway.dialects.responses.grammar import ResponsesGrammar
from serving.gateway.jsoncodec import dumpb
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream
from serving.gateway.upstreams.http import HTTPUpstream, with_model


class ResponsesClient(HTTPUpstream):
    dialect = "responses"

    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        body = rt.request_from_canonical(req, model)
        body.pop("stream", None)
        _, parsed, _ = await self.post_json("/responses", dumpb(body))
        return rt.response_to_canonical(parsed)

    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream:
        body = dumpb({**rt.request_from_canonical(req, model), "stream": True})
        return await self.primed(self.sse_events("/responses", body, rs.EventDecoder()))

    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        return await self.relay(call.path, with_model(call, model), call.stream, ResponsesGrammar())

    def answer_ok(self, url_path: str, body: dict[str, Any]) -> bool:
        return rt.answer_ok(body)

    def usage_of(self, body: dict[str, Any]) -> c.Usage:
        return rt.usage_to_canonical(body.get("usage"))

    async def ready(self) -> bool:
        return await self.get_ok(self._urls[0] + "/models")
