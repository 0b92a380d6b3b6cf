"""Gemini streaming: the encoder (canonical events → `streamGenerateContent?alt=sse`) and the
decoder (a Gemini upstream's stream → canonical events).

Each `data:` line is a whole `GenerateContentResponse` carrying the new parts only; there are
no event names and no terminator. A stream that finished cleanly is one whose last chunk had a
`finishReason`; a stream that breaks ends with a `{"error": {...}}` line, which google-genai
raises as `APIError` (it checks every chunk for a leading "error" key).
"""

from __future__ import annotations

import uuid
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic.translate import parse_args
from serving.gateway.dialects.gemini.translate import (
    call_from_part,
    finish_reason_out,
    stop_from_finish,
    usage_out,
    usage_to_canonical,
)
from serving.gateway.errors import GatewayError, Overloaded
from serving.gateway.frames import StreamBroken
from serving.gateway.jsoncodec import dumps
from serving.gateway.sse import data_frame

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(error: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and Google RPC envelope; Gemini has no 529, overload is 503 UNAVAILABLE."""
    status = error.status if isinstance(error, GatewayError) else 500
    if isinstance(error, Overloaded):
        status = 503
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    message = str(error) or type(error).__name__
    return status, {"error": {"code": status, "message": message, "status": name}}


def error_frame(error: Exception) -> bytes:
    return data_frame(dumps(error_body(error)[1]))


class ChunkEncoder:
    """Canonical events → one `GenerateContentResponse` per SSE frame.

    Text goes out as it arrives. A function call goes out whole when its block stops: Gemini
    sends `args` as an object, never as fragments, so the fragments are buffered.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = ""
        self._input_tokens = 0
        self._calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, fragments

    def resume(self, response_id: str, input_tokens: int) -> None:
        """Continue a relayed stream under its response id, as the client saw it."""
        self._id = response_id
        self._input_tokens = input_tokens

    def _chunk(self, parts: list[dict[str, Any]], finish: c.Finish | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate]}
        if finish is not None:
            candidate["finishReason"] = finish_reason_out(finish.stop)
            usage = finish.usage
            if not usage.input_tokens:  # some upstreams report the prompt only at the start
                usage = c.Usage(self._input_tokens, usage.output_tokens, usage.cached_input_tokens)
            body["usageMetadata"] = usage_out(usage)
        body |= {"modelVersion": self._model, "responseId": self._id}
        return data_frame(dumps(body))

    def encode(self, event: c.StreamEvent) -> bytes:
        if isinstance(event, c.Start):
            self._id = event.id or uuid.uuid4().hex
            self._input_tokens = event.input_tokens
            return b""
        if isinstance(event, c.TextDelta):
            return self._chunk([{"text": event.text}]) if event.text else b""
        if isinstance(event, c.BlockStart) and event.kind == "tool_call":
            call_id = event.id or f"call_{uuid.uuid4().hex[:24]}"
            self._calls[event.index] = (call_id, event.name or "", [])
            return b""
        if isinstance(event, c.ToolArgsDelta):
            self._calls[event.index][2].append(event.fragment)
            return b""
        if isinstance(event, c.BlockStop) and event.index in self._calls:
            call_id, name, fragments = self._calls.pop(event.index)
            args = parse_args("".join(fragments))
            return self._chunk([{"functionCall": {"id": call_id, "name": name, "args": args}}])
        if isinstance(event, c.Finish):
            return self._chunk([], event)
        if isinstance(event, c.Failure):
            return error_frame(event.error)
        return b""


class ChunkDecoder:
    """A Gemini upstream's chunks → canonical events with dense block indices.

    Consecutive text parts share one text block; each function call is a block of its own
    whose arguments arrive in one fragment. The finish is emitted when the stream ends, since
    usage may still follow on a later chunk.
    """

    def __init__(self) -> None:
        self._started = False
        self._index = -1
        self._text_open = False
        self._called = False
        self._reason: str | None = None
        self._usage = c.Usage()

    def feed(self, chunk: dict[str, Any]) -> list[c.StreamEvent]:
        if "error" in chunk:
            err = chunk["error"]
            message = err.get("message", "upstream error") if isinstance(err, dict) else str(err)
            failure = c.Failure(StreamBroken(f"upstream stream error: {message}", "error"))
            return [*self._close(), failure]  # a continuation opens the next block
        events: list[c.StreamEvent] = []
        if chunk.get("usageMetadata"):
            self._usage = usage_to_canonical(chunk["usageMetadata"])
        if not self._started:
            self._started = True
            rid, model = str(chunk.get("responseId") or ""), str(chunk.get("modelVersion") or "")
            events.append(c.Start(rid, model, self._usage.input_tokens))
        candidates = chunk.get("candidates") or []
        if not candidates and (chunk.get("promptFeedback") or {}).get("blockReason"):
            self._reason = "SAFETY"
        for candidate in candidates[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                events.extend(self._part(part))
            if candidate.get("finishReason"):
                self._reason = candidate["finishReason"]
        return events

    def _part(self, part: dict[str, Any]) -> list[c.StreamEvent]:
        if "text" in part and not part.get("thought"):
            if not part["text"]:
                return []
            events: list[c.StreamEvent] = []
            if not self._text_open:
                self._index += 1
                self._text_open = True
                events.append(c.BlockStart(self._index, "text"))
            events.append(c.TextDelta(self._index, part["text"]))
            return events
        if isinstance(part.get("functionCall"), dict):
            call = call_from_part(part["functionCall"])
            self._called = True
            events = self._close()
            self._index += 1
            i = self._index
            return [
                *events,
                c.BlockStart(i, "tool_call", call.id, call.name),
                c.ToolArgsDelta(i, call.arguments),
                c.BlockStop(i),
            ]
        return []

    def _close(self) -> list[c.StreamEvent]:
        if not self._text_open:
            return []
        self._text_open = False
        return [c.BlockStop(self._index)]

    def done(self) -> list[c.StreamEvent]:
        events = self._close()
        if self._reason is None:
            events.append(
                c.Failure(StreamBroken("upstream stream ended before a finishReason", "unfinished"))
            )
        else:
            events.append(c.Finish(stop_from_finish(self._reason, self._called), self._usage))
        return events
