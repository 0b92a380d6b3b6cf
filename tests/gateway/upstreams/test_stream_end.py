"""A translated stream's end: after the upstream's `data: [DONE]` the client reads on to the
body's end, so the connection goes back to the pool even when the end comes in a later packet
(as it does from a server that writes it separately); an upstream that sends on after [DONE]
does not hold the stream open, and its connection is not reused."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from serving.gateway import canonical as c
from serving.gateway.settings import Upstream
from serving.gateway.upstreams.openai_compat import OpenAICompatClient
from serving.gateway.upstreams.transport import Transport

REQUEST = c.ChatRequest("m", [c.Message("user", [c.Text("Hi")])])


def _piece(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _sse(obj: object) -> bytes:
    return _piece(b"data: " + json.dumps(obj).encode() + b"\n\n")


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _sse({"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
ANSWER = (
    _chunk({"role": "assistant", "content": ""})
    + _chunk({"content": "Hel"})
    + _chunk({"content": "lo"})
    + _chunk({}, "stop")
    + _piece(b"data: [DONE]\n\n")
)


class Upstream1:
    """An OpenAI-compatible stream server on 127.0.0.1 that answers every request on a
    connection with ANSWER, then does `after` (the body's end, late, or never)."""

    def __init__(self, after: str) -> None:
        self.after = after  # "late end" | "sends on"
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(HEAD + ANSWER)
                await writer.drain()
                if self.after == "late end":
                    await asyncio.sleep(0.05)  # the end in a packet of its own
                    writer.write(b"0\r\n\r\n")
                    continue
                while True:  # keep-alive comments, never an end
                    await asyncio.sleep(0.05)
                    writer.write(_piece(b": more\n\n"))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def client(url: str) -> OpenAICompatClient:
    config = Upstream.model_validate(
        {"name": "up", "dialect": "openai", "base_url": url + "/v1", "locality": "hosted"}
    )
    return OpenAICompatClient(config, Transport(connect=1, read=5))


async def text_of(up: OpenAICompatClient) -> str:
    events = await up.stream(REQUEST, "m")
    return "".join([e.text async for e in events if isinstance(e, c.TextDelta)])


async def test_a_late_body_end_after_done_still_keeps_the_connection() -> None:
    server = Upstream1("late end")
    async with server.running() as url:
        up = client(url)
        assert [await text_of(up) for _ in range(3)] == ["Hello"] * 3
        await up.aclose()
    assert server.connections == 1  # closed at [DONE], each stream would open its own
    assert up.gate.total == 0


async def test_an_upstream_that_sends_on_after_done_is_let_go_and_not_reused() -> None:
    server = Upstream1("sends on")
    async with server.running() as url:
        up = client(url)
        started = time.monotonic()
        assert await text_of(up) == "Hello"
        elapsed = time.monotonic() - started
        assert await text_of(up) == "Hello"
        await up.aclose()
    # given half a second to end, then dropped; the next stream has a connection of its own
    assert 0.4 <= elapsed < 3.0, f"the stream ended after {elapsed:.2f}s"
    assert server.connections == 2
    assert up.gate.total == 0
