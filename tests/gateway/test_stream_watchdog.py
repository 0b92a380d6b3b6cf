"""A stream's timer (policy/streams.py `Watchdog`): the total deadline fires while the upstream
is silent (not only when its next chunk arrives), and a client that stops reading is dropped
after `server.client_idle`, with the upstream stream released.

Every wait here is bounded: the fakes give up on their own after a few seconds.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_stream
from tests.support.servers import serve

WORDS = [f"w{i} " for i in range(10)]


def metric(url: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- the total deadline, while the upstream is silent -----------------------------------------


@pytest.fixture(scope="module")
def stalled() -> Iterator[tuple[str, FakeUpstream]]:
    """A primary whose stream goes silent after three words for 8 s: longer than its
    `timeouts.total` (1.5 s), shorter than its `stream_idle` (30 s), so only a timer can end it
    in time."""
    primary = FakeUpstream()
    with serve(primary.app) as p_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {
                        "name": "p",
                        "base_url": p_url + "/v1",
                        "timeouts": {"first_byte": 5, "total": 1.5, "stream_idle": 30},
                    }
                ],
                "routes": [{"model": "chat", "targets": [{"upstream": "p", "model": "m"}]}],
            },
            "watchdog-test",
        )
        with serve(create_app(settings)) as url:
            yield url, primary


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_total_deadline_ends_a_silent_stream_on_time(
    stalled: tuple[str, FakeUpstream], path: str
) -> None:
    """Same-dialect bytes (OpenAI client) and canonical events (Anthropic client)."""
    url, primary = stalled
    primary.script(Reply.sse(chat_stream(WORDS), stall_after=4, stall_for=8.0))
    body: dict[str, Any] = {
        "model": "chat",
        "stream": True,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "count"}],
    }
    before = metric(url, "serving_streams_ended_by_gateway_total", reason="deadline")
    started = time.monotonic()
    with httpx.stream("POST", url + path, json=body, timeout=20) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes())
    elapsed = time.monotonic() - started
    assert b'"w2 "' in raw  # the words before the silence reached the client
    assert b"exceeded its total time" in raw  # the dialect's error event, not a silent close
    assert b"[DONE]" not in raw and b"message_stop" not in raw  # never presented as finished
    assert elapsed < 6.0, f"the stream ran {elapsed:.2f}s past a 1.5s total"
    after = metric(url, "serving_streams_ended_by_gateway_total", reason="deadline")
    assert after == before + 1


# ---- a client that stops reading --------------------------------------------------------------


class Firehose:
    """An OpenAI-compatible upstream streaming big content chunks as fast as it may, for at
    most `limit` frames; records whether its stream was closed from the far side."""

    def __init__(self, limit: int = 4000) -> None:
        self.limit = limit
        self.sent = 0
        self.closed = threading.Event()
        self.finished = False
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(b"", 200)
        await request.body()
        return StreamingResponse(self._frames(), media_type="text/event-stream")

    async def _frames(self) -> AsyncIterator[bytes]:
        piece = "x" * 16_000
        try:
            yield chat_stream(())[0]  # the role chunk
            for _ in range(self.limit):
                self.sent += 1
                yield (
                    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
                    b'"choices":[{"index":0,"delta":{"content":"' + piece.encode() + b'"},'
                    b'"finish_reason":null}]}\n\n'
                )
                await asyncio.sleep(0)
            self.finished = True
        finally:
            self.closed.set()


def test_client_that_stops_reading_is_dropped_and_the_upstream_released() -> None:
    hose = Firehose()
    with serve(hose.app) as h_url:
        settings = parse_settings(
            {
                "server": {"client_idle": 0.5},
                "upstreams": [{"name": "h", "base_url": h_url + "/v1"}],
                "routes": [{"model": "chat", "targets": [{"upstream": "h", "model": "m"}]}],
            },
            "slow-client-test",
        )
        with serve(create_app(settings)) as url:
            host, port = url.removeprefix("http://").split(":")
            body = b'{"model":"chat","stream":true,"messages":[{"role":"user","content":"x"}]}'
            request = (
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
            sock.settimeout(10)
            before = metric(url, "serving_streams_ended_by_gateway_total", reason="client_idle")
            try:
                sock.connect((host, int(port)))
                sock.sendall(request)
                head = sock.recv(1024)
                assert head.startswith(b"HTTP/1.1 200")
                started = time.monotonic()
                # Stop reading. The gateway's writes back up; after client_idle it gives up.
                assert hose.closed.wait(15), "the upstream stream was never released"
                released = time.monotonic() - started
                assert not hose.finished  # cut short, not streamed to its end for nobody
                # The connection is dropped: draining what the buffers hold ends in EOF.
                received = 0
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    received += len(chunk)
                else:
                    pytest.fail("the gateway kept the client's connection open")
            finally:
                sock.close()
            assert released < 12.0
            assert received < hose.limit * 16_000  # far from the whole stream
            after = metric(url, "serving_streams_ended_by_gateway_total", reason="client_idle")
            assert after == before + 1
            requests = metric(url, "serving_requests_total", route="chat", status="499")
            assert requests >= 1
