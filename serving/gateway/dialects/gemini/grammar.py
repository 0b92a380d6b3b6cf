"""How a Gemini `streamGenerateContent?alt=sse` stream reads, frame by frame, for the frame
pipeline; and the encoder that continues a relayed stream after a break (same response id).

Gemini has no sentinel: a stream is complete when a chunk carried a `finishReason` (or the
prompt was blocked) and the connection then closed cleanly."""

from __future__ import annotations

from typing import Any

from serving.gateway.dialects.gemini.stream import ChunkEncoder
from serving.gateway.dialects.gemini.translate import usage_to_canonical
from serving.gateway.frames import Grammar, Kind


class GeminiGrammar(Grammar):
    def __init__(self) -> None:
        super().__init__()
        self.id: str | None = None

    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        if "error" in body:
            err = body["error"]
            self.error = str(err.get("message") if isinstance(err, dict) else err)
            return Kind.ERROR
        if self.id is None:
            self.id = str(body.get("responseId") or "")
            self.model = str(body.get("modelVersion") or "")
        kind = Kind.OTHER
        meta = body.get("usageMetadata")
        if meta:
            self.usage = usage_to_canonical(meta)
            self.usage_seen = True
            kind = Kind.USAGE
        candidates = body.get("candidates")
        if not candidates:
            if (body.get("promptFeedback") or {}).get("blockReason"):
                self.finished = True
                return Kind.FINISH
            return kind
        candidate = candidates[0]
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" in part and not part.get("thought"):
                if part["text"]:
                    self.text.append(part["text"])
                    self.content += 1
                    kind = Kind.CONTENT
            elif part:
                self.tool_calls += 1  # function calls, thoughts, code: not continued
                self.content += 1
                kind = Kind.CONTENT
        if candidate.get("finishReason"):
            self.finished = True
            kind = Kind.FINISH
        return kind

    def continuation_encoder(self) -> ChunkEncoder:
        encoder = ChunkEncoder(self.model or "")
        encoder.resume(self.id or "", self.usage.input_tokens)
        return encoder
