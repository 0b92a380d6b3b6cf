"""OpenAI streaming: chunk decoder (upstream → canonical events) and encoder (the reverse).

Both are pure state machines: no I/O, fed one item at a time.
"""

from __future__ import annotations

import time
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.openai.translate import (
    _STOP_TO_FINISH,
    called_stop,
    chat_id,
    stop_from_choice,
    usage_out,
    usage_to_canonical,
)
from serving.gateway.errors import GatewayError
from serving.gateway.frames import StreamBroken
from serving.gateway.jsoncodec import dumps
from serving.gateway.sse import data_frame


class ChunkDecoder:
    """Turns `chat.completion.chunk` objects into canonical events with dense block indices.

    Handles tool calls whose name and whole arguments arrive in one chunk, text and tool calls in
    the same chunk, and a usage chunk after the finish chunk (`stream_options.include_usage`).
    """

    def __init__(self) -> None:
        self._started = False
        self._index = -1  # canonical index of the open block, -1 when none
        self._open_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}  # upstream tool index -> canonical index
        self._stop: c.Stop | None = None
        self._usage = c.Usage()
        self.finished = False

    def _open(
        self, kind: str, call_id: str | None = None, name: str | None = None
    ) -> list[c.StreamEvent]:
        events: list[c.StreamEvent] = self._close()
        self._index += 1
        self._open_kind = kind
        events.append(c.BlockStart(self._index, kind, call_id, name))  # type: ignore[arg-type]
        return events

    def _close(self) -> list[c.StreamEvent]:
        if self._open_kind is None:
            return []
        self._open_kind = None
        return [c.BlockStop(self._index)]

    def feed(self, chunk: dict[str, Any]) -> list[c.StreamEvent]:
        if "error" in chunk:
            err = chunk["error"]
            message = err.get("message", "upstream error") if isinstance(err, dict) else str(err)
            failure = c.Failure(StreamBroken(f"upstream stream error: {message}", "error"))
            return [*self._close(), failure]  # a continuation opens the next block
        events: list[c.StreamEvent] = []
        if chunk.get("usage"):
            self._usage = usage_to_canonical(chunk["usage"])
        if not self._started:
            # vLLM's continuous usage stats put the prompt's size in the first chunk already.
            self._started = True
            start = c.Start(str(chunk.get("id") or ""), str(chunk.get("model") or ""))
            start.input_tokens = self._usage.input_tokens
            events.append(start)
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            events.extend(self._delta(choice.get("delta") or {}))
            if choice.get("finish_reason"):
                self._stop = stop_from_choice(choice["finish_reason"], choice.get("stop_reason"))
        return events

    def _delta(self, delta: dict[str, Any]) -> list[c.StreamEvent]:
        events: list[c.StreamEvent] = []
        text = delta.get("content")
        if text:
            if self._open_kind != "text":
                events.extend(self._open("text"))
            events.append(c.TextDelta(self._index, text))
        for call in delta.get("tool_calls") or []:
            upstream_index = call.get("index", 0)
            fn = call.get("function") or {}
            if upstream_index not in self._tool_blocks:
                events.extend(self._open("tool_call", call.get("id") or "", fn.get("name") or ""))
                self._tool_blocks[upstream_index] = self._index
            args = fn.get("arguments")
            if args:
                events.append(c.ToolArgsDelta(self._tool_blocks[upstream_index], args))
        return events

    def done(self) -> list[c.StreamEvent]:
        """`[DONE]` arrived, or the stream ended: finish cleanly only if a finish reason came."""
        events = self._close()
        if self._stop is None:
            events.append(
                c.Failure(StreamBroken("upstream stream ended before it finished", "unfinished"))
            )
        else:
            self.finished = True
            events.append(c.Finish(called_stop(self._stop, bool(self._tool_blocks)), self._usage))
        return events


class ChunkEncoder:
    """Canonical events → OpenAI SSE frames, `[DONE]` last; usage chunk when asked for."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = "chatcmpl-"
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}  # canonical block index -> tool_calls index

    def resume(self, chunk_id: str, created: int | None) -> None:
        """Continue a relayed stream: its chunk id and timestamp, as the client saw them."""
        self._id = chunk_id
        if created is not None:
            self._created = created

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            body["usage"] = None
        return data_frame(dumps(body))

    def encode(self, event: c.StreamEvent) -> bytes:
        if isinstance(event, c.Start):
            self._id = chat_id(event.id)
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, c.TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, c.BlockStart) and event.kind == "tool_call":
            n = self._tool_index[event.index] = len(self._tool_index)
            call: dict[str, Any] = {"index": n, "id": event.id, "type": "function"}
            call["function"] = {"name": event.name, "arguments": ""}
            return self._chunk({"tool_calls": [call]})
        if isinstance(event, c.ToolArgsDelta):
            n = self._tool_index[event.index]
            return self._chunk(
                {"tool_calls": [{"index": n, "function": {"arguments": event.fragment}}]}
            )
        if isinstance(event, c.Finish):
            out = self._chunk({}, _STOP_TO_FINISH[event.stop.reason])
            if self._include_usage:
                usage = {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                }
                usage |= {"model": self._model, "choices": [], "usage": usage_out(event.usage)}
                out += data_frame(dumps(usage))
            return out + b"data: [DONE]\n\n"
        if isinstance(event, c.Failure):
            return error_frame(event.error)
        return b""


def error_frame(error: Exception) -> bytes:
    """An in-stream error the OpenAI SDK raises as APIError; no `[DONE]` follows."""
    message = str(error) or type(error).__name__
    code = error.code if isinstance(error, GatewayError) else None  # a string or null
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
    return data_frame(dumps(body))
