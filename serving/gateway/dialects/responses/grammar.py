"""How a Responses stream reads, frame by frame, for the frame pipeline: typed events
(`response.output_text.delta`, ..., `response.completed`) classified so a relayed stream's first
token, completeness, usage and in-stream errors are known. A broken Responses stream is never
continued (no encoder continues its sequence numbers and item ids): it ends with the error."""

from __future__ import annotations

from typing import Any

from serving.gateway.dialects.responses import translate as t
from serving.gateway.frames import Encoder, Grammar, Kind

_CONTENT = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)
_FINISHED = frozenset({"response.completed", "response.incomplete"})


class ResponsesGrammar(Grammar):
    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        kind = body.get("type") or event
        if kind == "error" or kind == "response.failed":
            err = body.get("error") or (body.get("response") or {}).get("error") or body
            self.error = str(err.get("message") if isinstance(err, dict) else err)
            return Kind.ERROR
        if kind in _CONTENT:
            delta = body.get("delta")
            if kind == "response.output_text.delta" and isinstance(delta, str):
                self.text.append(delta)
            self.content += 1
            return Kind.CONTENT
        if kind == "response.output_item.added":
            item = body.get("item") or {}
            if item.get("type") == "function_call":
                self.tool_calls += 1
                self.content += 1
                return Kind.CONTENT
            return Kind.OTHER
        if kind in _FINISHED:
            response = body.get("response") or {}
            usage = response.get("usage")
            if usage:
                self.usage = t.usage_to_canonical(usage)
                self.usage_seen = True
            self.finished = True
            return Kind.FINISH
        return Kind.OTHER

    @property
    def tool_open(self) -> bool:
        return True  # never continued: see the module docstring

    def continuation_encoder(self) -> Encoder:
        raise NotImplementedError("a Responses stream is never continued")
