"""A scripted fake upstream: a real HTTP server on 127.0.0.1 that answers from a queue.

Each request pops the next `Reply` (the last one repeats when the queue runs dry) and is
recorded, so tests assert on what the gateway sent and how often.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as is
    frames: Sequence[bytes] | None = None  # SSE frames for a stream
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0  # before the response starts
    frame_delay: float = 0.0
    cut_after: int | None = None  # break the connection after this many frames
    stall_after: int | None = None  # go silent for `stall_for` seconds after this many frames
    stall_for: float = 0.0

    @staticmethod
    def json(body: Any, status: int = 200, **kw: Any) -> Reply:
        return Reply(status=status, body=body, **kw)

    @staticmethod
    def sse(frames: Sequence[bytes], **kw: Any) -> Reply:
        return Reply(frames=frames, **kw)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeUpstream:
    def __init__(self, replies: Sequence[Reply] = ()) -> None:
        self.replies: list[Reply] = list(replies)
        self.requests: list[Recorded] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def _next(self) -> Reply:
        if not self.replies:
            return Reply.json({"error": {"message": "fake upstream has no script"}}, 500)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        if request.method == "GET" and path.endswith("/health"):
            return Response(b"", 200)
        body = await request.body()
        self.requests.append(Recorded(request.method, path, dict(request.headers), body))
        reply = self._next()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.frames is not None:
            return StreamingResponse(
                _frames(reply),
                status_code=reply.status,
                headers=reply.headers,
                media_type=reply.content_type or "text/event-stream",
            )
        raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        return Response(
            raw,
            reply.status,
            headers=reply.headers,
            media_type=reply.content_type or "application/json",
        )


async def _frames(reply: Reply) -> AsyncIterator[bytes]:
    for i, frame in enumerate(reply.frames or ()):
        if reply.cut_after is not None and i >= reply.cut_after:
            raise ConnectionResetError("fake upstream cut the stream")
        if reply.stall_after is not None and i == reply.stall_after:
            await asyncio.sleep(reply.stall_for)
        if reply.frame_delay:
            await asyncio.sleep(reply.frame_delay)
        yield frame


# ---- OpenAI-compatible reply builders ---------------------------------------------------------


def chat_completion(
    text: str | None = "Hello!",
    *,
    finish_reason: str = "stop",
    stop_reason: Any = None,
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 11,
    completion_tokens: int = 3,
    model: str = "upstream-model",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
    body = {
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [choice],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def chat_stream(
    pieces: Sequence[str] = ("Hel", "lo", "!"),
    *,
    finish_reason: str = "stop",
    stop_reason: Any = None,
    tool_calls: Sequence[tuple[str, str, Sequence[str]]] = (),
    prompt_tokens: int = 11,
    usage: bool = True,
    done: bool = True,
) -> list[bytes]:
    """Frames of an OpenAI stream: role, text pieces, tool calls (id, name, arg fragments)."""
    frames = [_chunk({"role": "assistant", "content": ""})]
    frames += [_chunk({"content": p}) for p in pieces]
    for n, (call_id, name, fragments) in enumerate(tool_calls):
        first = {
            "index": n,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        frames.append(_chunk({"tool_calls": [first]}))
        frames += [
            _chunk({"tool_calls": [{"index": n, "function": {"arguments": f}}]}) for f in fragments
        ]
    frames.append(_chunk({}, finish_reason, stop_reason=stop_reason))
    if usage:
        completion = len(pieces) + sum(len(f) for _, _, f in tool_calls)
        body = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "upstream-model",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        }
        frames.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    if done:
        frames.append(b"data: [DONE]\n\n")
    return frames


def openai_error(status: int, message: str, type_: str = "invalid_request_error") -> Reply:
    return Reply.json(
        {"error": {"message": message, "type": type_, "param": None, "code": status}}, status
    )


# ---- Anthropic Messages reply builders --------------------------------------------------------


def anthropic_message(
    text: str | None = "Hello!",
    *,
    stop_reason: str = "end_turn",
    stop_sequence: str | None = None,
    tool_uses: Sequence[tuple[str, str, dict[str, Any]]] = (),
    input_tokens: int = 11,
    output_tokens: int = 3,
    model: str = "claude-upstream",
) -> dict[str, Any]:
    """A Messages response: optional text, then tool_use blocks (id, name, input)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": call_id, "name": name, "input": args}
        for call_id, name, args in tool_uses
    ]
    return {
        "id": "msg_fake123",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _event(name: str, body: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(body).encode() + b"\n\n"


def anthropic_stream(
    pieces: Sequence[str] = ("Hel", "lo", "!"),
    *,
    stop_reason: str = "end_turn",
    stop_sequence: str | None = None,
    tool_uses: Sequence[tuple[str, str, Sequence[str]]] = (),
    input_tokens: int = 11,
    output_tokens: int = 3,
    finish: bool = True,
) -> list[bytes]:
    """Frames in the SDK fixtures' order: message_start, blocks (ping after the first start),
    message_delta with cumulative usage, message_stop. Tool uses: (id, name, json fragments)."""
    message = anthropic_message(None, input_tokens=input_tokens, output_tokens=1)
    message |= {"stop_reason": None, "content": []}
    frames = [_event("message_start", {"type": "message_start", "message": message})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if pieces:
        deltas = [{"type": "text_delta", "text": p} for p in pieces]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for call_id, name, fragments in tool_uses:
        start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        blocks.append((start, [{"type": "input_json_delta", "partial_json": f} for f in fragments]))
    for index, (start, deltas) in enumerate(blocks):
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        if index == 0:
            frames.append(_event("ping", {"type": "ping"}))
        frames += [
            _event(
                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}
            )
            for d in deltas
        ]
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    if finish:
        delta = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
        usage = {"output_tokens": output_tokens}
        frames.append(
            _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        frames.append(_event("message_stop", {"type": "message_stop"}))
    return frames


def anthropic_error(status: int, message: str, type_: str = "invalid_request_error") -> Reply:
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"}
    return Reply.json(body, status, headers={"request-id": "req_1"})


# ---- Gemini generateContent reply builders ----------------------------------------------------


def gemini_response(
    text: str | None = "Hello!",
    *,
    finish_reason: str = "STOP",
    calls: Sequence[tuple[str, dict[str, Any]]] = (),
    prompt_tokens: int = 11,
    candidates_tokens: int = 3,
) -> dict[str, Any]:
    """A GenerateContentResponse: optional text, then function calls (name, args) without ids,
    as the Gemini API sends them."""
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": candidates_tokens,
            "totalTokenCount": prompt_tokens + candidates_tokens,
        },
        "modelVersion": "gemini-upstream",
        "responseId": "resp_fake123",
    }


def gemini_stream(
    pieces: Sequence[str] = ("Hel", "lo", "!"),
    *,
    finish_reason: str | None = "STOP",
    calls: Sequence[tuple[str, dict[str, Any]]] = (),
    prompt_tokens: int = 11,
    candidates_tokens: int = 3,
) -> list[bytes]:
    """`alt=sse` frames (CRLF-separated, as Google sends them): one chunk per text piece, the
    calls and the finish reason with the final usage on the last chunk; no terminator."""

    def frame(parts: list[dict[str, Any]], finish: str | None, out_tokens: int) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": out_tokens}
        usage["totalTokenCount"] = prompt_tokens + out_tokens
        body = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-upstream",
            "responseId": "resp_fake123",
        }
        return b"data: " + json.dumps(body).encode() + b"\r\n\r\n"

    frames = [frame([{"text": p}], None, i + 1) for i, p in enumerate(pieces)]
    last = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    frames.append(frame(last, finish_reason, candidates_tokens))
    return frames


GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(status: int, message: str) -> Reply:
    name = GOOGLE_STATUS.get(status, "UNKNOWN")
    return Reply.json({"error": {"code": status, "message": message, "status": name}}, status)
