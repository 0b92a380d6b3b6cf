"""Anthropic streaming: the encoder (canonical events → Messages SSE) and the decoder (an
Anthropic upstream's SSE → canonical events).

The encoder alone keeps the Messages invariants: `message_start` first, dense block indices,
start → deltas → stop per block, `message_delta` with cumulative usage, `message_stop` last,
and an `error` event (never a clean finish) when the stream breaks.
"""

from __future__ import annotations

import json
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic.translate import (
    message_id,
    parse_args,
    stop_reason_out,
    stop_to_canonical,
    tool_use_id,
    usage_to_canonical,
)
from serving.gateway.errors import GatewayError, Saturated
from serving.gateway.frames import StreamBroken
from serving.gateway.jsoncodec import dumps
from serving.gateway.sse import named_frame


def _frame(event: str, body: dict[str, Any]) -> bytes:
    return named_frame(event, dumps(body))


PING = named_frame("ping", '{"type":"ping"}')


def _args_delta(index: int, partial: str) -> bytes:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return _frame(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


class EventEncoder:
    def __init__(self, model: str, *, input_tokens: int = 0, started: bool = False) -> None:
        self._model = model
        self._input_tokens = input_tokens
        self._pinged = started  # continuing a relayed stream: its start and ping were sent
        self._open: int | None = None
        # Tool arguments that do not open with `{` are held to the block's end and sent as the
        # same object a whole answer carries (`parse_args`): a bare value is no `input`.
        self._held: dict[int, str] = {}
        self._live: set[int] = set()

    def encode(self, event: c.StreamEvent) -> bytes:
        if isinstance(event, c.Start):
            return self._start(event)
        if isinstance(event, c.BlockStart):
            if event.kind == "text":
                block: dict[str, Any] = {"type": "text", "text": ""}
            else:
                block = {
                    "type": "tool_use",
                    "id": tool_use_id(event.id or ""),
                    "name": event.name or "",
                    "input": {},
                }
            self._open = event.index
            out = _frame(
                "content_block_start",
                {"type": "content_block_start", "index": event.index, "content_block": block},
            )
            if not self._pinged:
                self._pinged = True
                out += PING
            return out
        if isinstance(event, c.TextDelta):
            delta = {"type": "text_delta", "text": event.text}
            return _frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": event.index, "delta": delta},
            )
        if isinstance(event, c.ToolArgsDelta):
            return self._tool_args(event)
        if isinstance(event, c.BlockStop):
            self._open = None
            out = b""
            held = self._held.pop(event.index, None)
            if held is not None:
                out = _args_delta(event.index, json.dumps(parse_args(held), ensure_ascii=False))
            return out + _frame(
                "content_block_stop", {"type": "content_block_stop", "index": event.index}
            )
        if isinstance(event, c.Finish):
            return self._finish(event)
        return error_event(event.error)

    def _tool_args(self, event: c.ToolArgsDelta) -> bytes:
        index = event.index
        if index in self._live:
            return _args_delta(index, event.fragment)
        held = self._held.get(index, "") + event.fragment
        if held.lstrip()[:1] == "{":  # an object: stream it as it comes
            self._held.pop(index, None)
            self._live.add(index)
            return _args_delta(index, held)
        self._held[index] = held
        return b""

    def _start(self, event: c.Start) -> bytes:
        input_tokens = event.input_tokens or self._input_tokens
        message: dict[str, Any] = {
            "id": message_id(event.id),
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return _frame("message_start", {"type": "message_start", "message": message})

    def _finish(self, event: c.Finish) -> bytes:
        sequence = event.stop.sequence if event.stop.reason == c.StopReason.STOP_SEQUENCE else None
        usage = event.usage
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason_out(event.stop), "stop_sequence": sequence},
            "usage": {
                "input_tokens": usage.input_tokens - usage.cached_input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_input_tokens": usage.cached_input_tokens,
            },
        }
        return _frame("message_delta", delta) + _frame("message_stop", {"type": "message_stop"})


def error_type(error: Exception) -> str:
    if isinstance(error, Saturated):
        return "overloaded_error"
    status = error.status if isinstance(error, GatewayError) else 500
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_event(error: Exception) -> bytes:
    message = str(error) or type(error).__name__
    body = {"type": "error", "error": {"type": error_type(error), "message": message}}
    return _frame("error", body)


class EventDecoder:
    """An Anthropic upstream's stream → canonical events (indices are already dense there)."""

    def __init__(self) -> None:
        self._usage = c.Usage()
        self._stop: c.Stop | None = None
        self._kinds: dict[int, str] = {}
        self.finished = False

    def feed(self, event: dict[str, Any]) -> list[c.StreamEvent]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._usage = usage_to_canonical(message.get("usage"))
            return [
                c.Start(
                    str(message.get("id") or ""),
                    str(message.get("model") or ""),
                    self._usage.input_tokens,
                )
            ]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_stop":
            return [c.BlockStop(int(event.get("index", 0)))]
        if kind == "message_delta":
            delta = event.get("delta") or {}
            self._stop = stop_to_canonical(delta.get("stop_reason"), delta.get("stop_sequence"))
            self._merge_usage(event.get("usage") or {})
            return []
        if kind == "message_stop":
            self.finished = True
            return [c.Finish(self._stop or c.Stop(c.StopReason.END_TURN), self._usage)]
        if kind == "error":
            err = event.get("error") or {}
            message = err.get("message", "upstream stream error")
            return [c.Failure(StreamBroken(f"upstream stream error: {message}", "error"))]
        return []  # ping and unknown events are ignored, as the SDK does

    def _block_start(self, event: dict[str, Any]) -> list[c.StreamEvent]:
        index = int(event.get("index", 0))
        block = event.get("content_block") or {}
        if block.get("type") == "tool_use":
            self._kinds[index] = "tool_call"
            return [c.BlockStart(index, "tool_call", block.get("id"), block.get("name"))]
        self._kinds[index] = "text"
        out: list[c.StreamEvent] = [c.BlockStart(index, "text")]
        if block.get("text"):
            out.append(c.TextDelta(index, block["text"]))
        return out

    def _delta(self, event: dict[str, Any]) -> list[c.StreamEvent]:
        index = int(event.get("index", 0))
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [c.TextDelta(index, delta.get("text", ""))]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            return [c.ToolArgsDelta(index, delta["partial_json"])]
        return []

    def _merge_usage(self, usage: dict[str, Any]) -> None:
        if "output_tokens" in usage:
            self._usage.output_tokens = int(usage["output_tokens"] or 0)
        if usage.get("input_tokens") is not None:
            merged = usage_to_canonical({**usage, "output_tokens": self._usage.output_tokens})
            self._usage.input_tokens = merged.input_tokens
            self._usage.cached_input_tokens = merged.cached_input_tokens

    def done(self) -> list[c.StreamEvent]:
        """The stream closed: complete if its finish (a stop reason) came, with or without
        `message_stop`."""
        if self.finished:
            return []
        if self._stop is not None:
            self.finished = True
            return [c.Finish(self._stop, self._usage)]
        return [
            c.Failure(StreamBroken("upstream stream ended before its stop reason", "unfinished"))
        ]
