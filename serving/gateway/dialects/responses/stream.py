"""Responses streaming: the encoder (canonical events → typed Responses events), the decoder (a
Responses upstream's events → canonical events) and the tap that watches a relayed stream.

The encoder alone keeps the Responses invariants the SDKs check: `response.created` first, one
output item per canonical block with `output_index` in order, added → deltas → done per item
(a message item also opens and closes its `output_text` part), `sequence_number` counting from
0, and one terminal event: `response.completed`, `response.incomplete`, or `error` +
`response.failed` when the stream breaks. All three are pure state machines.
"""

from __future__ import annotations

import json
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.responses import translate as t
from serving.gateway.errors import GatewayError, UpstreamError
from serving.gateway.jsoncodec import dumps
from serving.gateway.sse import SSEDecoder, named_frame

TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def frame(event: dict[str, Any]) -> bytes:
    return named_frame(str(event["type"]), dumps(event))


def error_code(error: Exception) -> str:
    status = error.status if isinstance(error, GatewayError) else 500
    if isinstance(error, GatewayError) and error.code:
        return error.code
    return {429: "rate_limit_exceeded"}.get(status, "server_error")


def error_event(error: Exception, sequence_number: int) -> dict[str, Any]:
    message = str(error) or type(error).__name__
    return {
        "type": "error",
        "sequence_number": sequence_number,
        "code": error_code(error),
        "message": message,
        "param": None,
    }


class EventEncoder:
    """Canonical events → Responses SSE frames; `snapshot` is the Response so far (or final)."""

    def __init__(self, response_id: str, echo: dict[str, Any], created_at: int) -> None:
        self.response_id = response_id
        self._echo = echo
        self._created_at = created_at
        self._seq = 0
        self.items: list[dict[str, Any]] = []
        self._by_block: dict[int, int] = {}  # canonical block index -> output index
        self.final: dict[str, Any] | None = None

    def _emit(self, body: dict[str, Any]) -> bytes:
        event = {"type": body.pop("type"), "sequence_number": self._seq, **body}
        self._seq += 1
        return frame(event)

    def snapshot(self, status: str = "in_progress", **kw: Any) -> dict[str, Any]:
        return t.response_object(
            self.response_id,
            self._echo,
            created_at=self._created_at,
            status=status,
            output=[dict(i) for i in self.items],
            usage=kw.pop("usage", None),
            **kw,
        )

    def finished(self, event: c.Finish) -> dict[str, Any]:
        """The final Response for a Finish event (the same object `encode` sends with it)."""
        status, incomplete = t.status_of(event.stop)
        return self.snapshot(status, usage=event.usage, incomplete=incomplete)

    def encode(self, event: c.StreamEvent) -> bytes:
        if isinstance(event, c.Start):
            start = self.snapshot()
            return self._emit({"type": "response.created", "response": start}) + self._emit(
                {"type": "response.in_progress", "response": start}
            )
        if isinstance(event, c.BlockStart):
            return self._open(event)
        if isinstance(event, c.TextDelta):
            return self._text(event)
        if isinstance(event, c.ToolArgsDelta):
            index = self._by_block[event.index]
            item = self.items[index]
            item["arguments"] += event.fragment
            return self._emit(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": event.fragment,
                }
            )
        if isinstance(event, c.BlockStop):
            return self._close(event.index)
        if isinstance(event, c.Finish):
            self.final = self.finished(event)
            kind = (
                "response.completed"
                if self.final["status"] == "completed"
                else "response.incomplete"
            )
            return self._emit({"type": kind, "response": self.final})
        return self._fail(event.error)

    def _open(self, event: c.BlockStart) -> bytes:
        index = len(self.items)
        self._by_block[event.index] = index
        if event.kind == "text":
            item = t.message_item(t.new_id("msg"), "", status="in_progress")
        else:
            item = t.function_call_item(
                t.new_id("fc"), event.id or "", event.name or "", "", status="in_progress"
            )
        self.items.append(item)
        out = self._emit(
            {"type": "response.output_item.added", "output_index": index, "item": item}
        )
        if event.kind == "text":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"] = [part]
            out += self._emit(
                {
                    "type": "response.content_part.added",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "part": dict(part),
                }
            )
        return out

    def _text(self, event: c.TextDelta) -> bytes:
        index = self._by_block[event.index]
        item = self.items[index]
        item["content"][0]["text"] += event.text
        return self._emit(
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "delta": event.text,
                "logprobs": [],
            }
        )

    def _close(self, block: int) -> bytes:
        index = self._by_block[block]
        item = self.items[index]
        item["status"] = "completed"
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out += self._emit(
                {
                    "type": "response.output_text.done",
                    **common,
                    "text": part["text"],
                    "logprobs": [],
                }
            )
            out += self._emit({"type": "response.content_part.done", **common, "part": part})
        else:
            out += self._emit(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        return out + self._emit(
            {"type": "response.output_item.done", "output_index": index, "item": item}
        )

    def _fail(self, error: Exception) -> bytes:
        failed = self.snapshot(
            "failed", error={"code": error_code(error), "message": str(error) or "stream failed"}
        )
        self.final = None
        out = self._emit(error_event(error, self._seq))
        return out + self._emit({"type": "response.failed", "response": failed})


class EventDecoder:
    """A Responses upstream's events → canonical events with dense block indices (reasoning and
    other non-message items open no block)."""

    def __init__(self) -> None:
        self._blocks: dict[int, int] = {}  # upstream output index -> canonical block index
        self._next = 0
        self._calls = False
        self.finished = False

    def feed(self, event: dict[str, Any]) -> list[c.StreamEvent]:
        kind = event.get("type")
        if kind == "response.created":
            response = event.get("response") or {}
            return [c.Start(str(response.get("id") or ""), str(response.get("model") or ""))]
        if kind == "response.output_item.added":
            return self._added(event)
        if kind == "response.output_text.delta" and event.get("output_index") in self._blocks:
            return [c.TextDelta(self._blocks[event["output_index"]], str(event.get("delta") or ""))]
        if kind == "response.function_call_arguments.delta" and event.get("delta"):
            block = self._blocks.get(event.get("output_index", -1))
            return [] if block is None else [c.ToolArgsDelta(block, str(event["delta"]))]
        if kind == "response.output_item.done":
            block = self._blocks.get(event.get("output_index", -1))
            return [] if block is None else [c.BlockStop(block)]
        if kind in ("response.completed", "response.incomplete"):
            self.finished = True
            response = event.get("response") or {}
            stop = t.stop_to_canonical(response, self._calls)
            return [c.Finish(stop, t.usage_to_canonical(response.get("usage")))]
        if kind in ("response.failed", "error"):
            self.finished = True
            err = (event.get("response") or {}).get("error") or event
            message = err.get("message") if isinstance(err, dict) else None
            return [c.Failure(UpstreamError(f"upstream stream error: {message or 'failed'}"))]
        return []

    def _added(self, event: dict[str, Any]) -> list[c.StreamEvent]:
        item = event.get("item") or {}
        index = event.get("output_index", len(self._blocks))
        if item.get("type") == "message":
            self._blocks[index] = self._next
            self._next += 1
            return [c.BlockStart(self._blocks[index], "text")]
        if item.get("type") == "function_call":
            self._calls = True
            self._blocks[index] = self._next
            self._next += 1
            block = c.BlockStart(
                self._blocks[index], "tool_call", item.get("call_id"), item.get("name")
            )
            return [block]
        return []

    def done(self) -> list[c.StreamEvent]:
        if self.finished:
            return []
        return [c.Failure(UpstreamError("upstream stream ended before response.completed"))]


class StreamTap:
    """Watches a relayed Responses stream as it passes: keeps the last sequence number and the
    terminal event's Response (to store it), without changing a byte."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self.sequence = -1
        self.created: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.terminal: str | None = None

    def feed(self, chunk: bytes) -> None:
        for sse in self._decoder.feed(chunk):
            if not sse.data or sse.data == "[DONE]":
                continue
            try:
                event = json.loads(sse.data)
            except ValueError:
                continue  # relayed as is; the client's parser reports it
            if not isinstance(event, dict):
                continue
            if isinstance(event.get("sequence_number"), int):
                self.sequence = event["sequence_number"]
            kind = event.get("type")
            if kind == "response.created":
                self.created = event.get("response")
            if kind in TERMINAL or kind == "error":
                self.terminal = str(kind)
                if kind in ("response.completed", "response.incomplete"):
                    self.final = event.get("response")

    def error_frame(self, error: Exception) -> bytes:
        return frame(error_event(error, self.sequence + 1))


def relay_error_frame(error: Exception) -> bytes:
    """An in-stream error for a relayed stream whose position is unknown."""
    return frame(error_event(error, 0))
