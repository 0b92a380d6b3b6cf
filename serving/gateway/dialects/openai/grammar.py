"""How an OpenAI stream reads, frame by frame: `chat.completion.chunk` objects (and legacy
`text_completion` chunks) classified for the frame pipeline, and the encoder that continues a
relayed stream after a break (same chunk id and model, no second role chunk)."""

from __future__ import annotations

from typing import Any

from serving.gateway.dialects.openai.stream import ChunkEncoder
from serving.gateway.dialects.openai.translate import usage_to_canonical
from serving.gateway.frames import Grammar, Kind


class OpenAIGrammar(Grammar):
    sentinel = b"[DONE]"
    closing = b"data: [DONE]\n\n"

    def __init__(self, *, include_usage: bool = False) -> None:
        super().__init__()
        self.include_usage = include_usage  # the client asked for a usage chunk
        self.id: str | None = None
        self.created: int | None = None

    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        if "error" in body:
            err = body["error"]
            self.error = str(err.get("message") if isinstance(err, dict) else err)
            return Kind.ERROR
        if self.id is None:
            self.id = str(body.get("id") or "")
            self.model = str(body.get("model") or "")
            created = body.get("created")
            self.created = created if isinstance(created, int) else None
        kind = Kind.OTHER
        usage = body.get("usage")
        if usage:
            self.usage = usage_to_canonical(usage)
            self.usage_seen = True
            kind = Kind.USAGE
        for choice in body.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text:
                    self.text.append(text)
                    self.content += 1
                    kind = Kind.CONTENT
                if delta.get("tool_calls"):
                    self.tool_calls += 1
                    self.content += 1
                    kind = Kind.CONTENT
                if delta.get("refusal"):
                    self.content += 1
                    self.tool_calls += 1  # a refusal is not continued either
                    kind = Kind.CONTENT
            elif choice.get("text"):  # /v1/completions
                self.text.append(choice["text"])
                self.content += 1
                kind = Kind.CONTENT
            if choice.get("finish_reason"):
                self.finished = True
                kind = Kind.FINISH
        return kind

    def continuation_encoder(self) -> ChunkEncoder:
        encoder = ChunkEncoder(self.model or "", include_usage=self.include_usage)
        encoder.resume(self.id or "", self.created)
        return encoder
