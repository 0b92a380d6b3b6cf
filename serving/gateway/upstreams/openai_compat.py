"""OpenAI-compatible upstreams: vLLM engines and hosted OpenAI.

`base_url` includes `/v1` (as every OpenAI client expects); vLLM's /tokenize and /health live
at the server root beside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.openai import stream as oai_stream
from serving.gateway.dialects.openai import translate as oai
from serving.gateway.dialects.openai.grammar import OpenAIGrammar
from serving.gateway.dialects.responses import translate as responses
from serving.gateway.dialects.responses.grammar import ResponsesGrammar
from serving.gateway.frames import Grammar
from serving.gateway.jsoncodec import dumpb
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream
from serving.gateway.upstreams.http import HTTPUpstream, with_model


class OpenAICompatClient(HTTPUpstream):
    dialect = "openai"

    def speaks(self, dialect: str) -> bool:
        return dialect == "openai" or (dialect == "responses" and self.config.responses_api)

    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        body = oai.request_from_canonical(req, model)
        body.pop("stream", None)
        body.pop("stream_options", None)
        _, parsed, _ = await self.post_json("/chat/completions", dumpb(body))
        return oai.response_to_canonical(parsed)

    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream:
        return await self.primed(self._chat_events(req, model, {}))

    async def _continue_stream(self, req: c.ChatRequest, model: str) -> EventStream:
        """vLLM continues the trailing assistant message instead of starting a new turn."""
        extra = {"continue_final_message": True, "add_generation_prompt": False}
        return await self.primed(self._chat_events(req, model, extra))

    def _chat_events(
        self, req: c.ChatRequest, model: str, extra: dict[str, Any]
    ) -> AsyncIterator[c.StreamEvent]:
        full = oai.request_from_canonical(req, model) | extra
        if self.locality == "local":
            # vLLM's extension: usage in every chunk, so the prompt's size is known at the first
            # (an Anthropic client's `message_start` carries it). Hosted OpenAI would refuse it.
            full["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        body = dumpb(full)
        return self.sse_events("/chat/completions", body, oai_stream.ChunkDecoder())

    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        grammar: Grammar | None = None  # another endpoint's stream: relayed opaquely
        if call.path.endswith("/responses"):
            grammar = ResponsesGrammar()
        elif call.path.endswith("completions"):  # chat.completion.chunk / text_completion
            options = call.parsed.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            grammar = OpenAIGrammar(include_usage=include_usage)
        return await self.relay(call.path, with_model(call, model), call.stream, grammar)

    def usage_of(self, body: dict[str, Any]) -> c.Usage:
        if body.get("object") == "response":  # a forwarded Responses answer
            return responses.usage_to_canonical(body.get("usage"))
        return oai.usage_to_canonical(body.get("usage"))

    def answer_ok(self, url_path: str, body: dict[str, Any]) -> bool:
        if url_path.endswith("/embeddings"):
            return isinstance(body.get("data"), list)
        if url_path.endswith("/responses"):
            return responses.answer_ok(body)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return False
        return not url_path.endswith("/chat/completions") or isinstance(
            choices[0].get("message"), dict
        )

    async def _count_tokens(self, req: c.ChatRequest, model: str) -> int:
        """vLLM's /tokenize renders the served model's own chat template and counts its tokens."""
        full = oai.request_from_canonical(req, model)
        body = {"model": model, "messages": full["messages"]}
        if "tools" in full:
            body["tools"] = full["tools"]
        _, parsed, _ = await self.post_json("/tokenize", dumpb(body), root=True)
        return self.int_field(parsed, "count", "/tokenize")

    async def ready(self) -> bool:
        return await self.get_ok(self._urls[0].removesuffix("/v1") + self.config.health_path)
