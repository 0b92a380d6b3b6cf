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
