"""How an Anthropic Messages stream reads, frame by frame, for the frame pipeline; and the
encoder that continues a relayed stream after a break: no second `message_start`, block indices
continuing densely, the open text block continued in place."""

from __future__ import annotations

from typing import Any

from serving.gateway.dialects.anthropic.stream import EventEncoder
from serving.gateway.dialects.anthropic.translate import usage_to_canonical
from serving.gateway.frames import Grammar, Kind


class AnthropicGrammar(Grammar):
    sentinel = b""  # message_stop is an event of its own, matched by type below
    closing = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    def __init__(self) -> None:
        super().__init__()
        self.id: str | None = None

    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        kind = body.get("type")
        if kind == "content_block_delta":
            delta = body["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                self.text.append(delta.get("text") or "")
            elif dtype == "input_json_delta":
                self.tool_calls = max(self.tool_calls, 1)
            self.content += 1
            return Kind.CONTENT
        if kind == "content_block_start":
            block = body["content_block"]
            index = int(body.get("index", self.blocks))
            self.blocks = index + 1
            if block.get("type") == "text":
                self.open_text = index
                if block.get("text"):
                    self.text.append(block["text"])
                    self.content += 1
                    return Kind.CONTENT
                return Kind.OTHER
            self.open_text = None
            self.tool_calls += 1  # tool_use, thinking, server tools: not continued
            self.content += 1
            return Kind.CONTENT
        if kind == "content_block_stop":
            if self.open_text == body.get("index"):
                self.open_text = None
            return Kind.OTHER
        if kind == "message_delta":
            usage = body.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self.usage.output_tokens = int(usage["output_tokens"])
                self.usage_seen = True
            if usage.get("input_tokens") is not None:
                found = usage_to_canonical(usage)
                self.usage.input_tokens = found.input_tokens
                self.usage.cached_input_tokens = found.cached_input_tokens
            if (body.get("delta") or {}).get("stop_reason"):
                self.finished = True
                return Kind.FINISH
            return Kind.USAGE
        if kind == "message_start":
            message = body["message"]
            self.model = str(message.get("model") or "")
            self.id = str(message.get("id") or "")
            found = usage_to_canonical(message.get("usage"))
            self.usage = found
            self.usage_seen = True
            return Kind.OTHER
        if kind == "message_stop":
            self.done = True
            return Kind.DONE
        if kind == "error":
            err = body.get("error") or {}
            self.error = str(err.get("message") if isinstance(err, dict) else err)
            return Kind.ERROR
        if kind is None:
            return Kind.MALFORMED
        return Kind.OTHER  # ping, and event types added later (the SDK skips them too)

    def continuation_encoder(self) -> EventEncoder:
        return EventEncoder(self.model or "", started=True)
