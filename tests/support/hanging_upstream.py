"""A raw-socket fake upstream on 127.0.0.1 that never finishes answering, and records when the
gateway closes each connection: for tests that a client's disconnect reaches the upstream.

Each connection: read the request, optionally send the head of an SSE response and one frame
(`stream_first`), then wait until the peer closes (recv returns b"") and record how long after
the request that took.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.raw_upstream import RawSocketServer

FIRST_FRAME = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}'
    b"\n\n"
)


class HangingUpstream(RawSocketServer):
    def __init__(self, *, stream_first: bool = False, hold: float = 20.0) -> None:
        super().__init__(backlog=16)
        self.stream_first = stream_first
        self.hold = hold  # the longest a connection is held open before the fake gives up
        self.requests = 0
        self.closed_after: list[float] = []  # seconds from request to the gateway's close
        self._threads: list[threading.Thread] = []

    def handle(self, conn: socket.socket) -> None:
        t = threading.Thread(target=self._hold, args=(conn,), daemon=True)
        t.start()
        self._threads.append(t)

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.hold)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            if not data.startswith(b"POST"):
                return  # a readiness probe or anything else: not counted
            self.requests += 1
            started = time.monotonic()
            if self.stream_first:
                head = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                body = f"{len(FIRST_FRAME):x}\r\n".encode() + FIRST_FRAME + b"\r\n"
                with contextlib.suppress(OSError):
                    conn.sendall(head + body)
            try:
                while conn.recv(65536):
                    pass  # the rest of the request body, if any
            except OSError:
                return  # held past `hold`: never closed by the gateway, nothing recorded
            self.closed_after.append(time.monotonic() - started)

    @contextmanager
    def running(self) -> Iterator[HangingUpstream]:
        self._start()
        try:
            yield self
        finally:
            self._shutdown()
            for t in self._threads:
                t.join(timeout=self.hold + 1)

    def wait_closed(self, count: int, within: float) -> bool:
        deadline = time.monotonic() + within
        while len(self.closed_after) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.closed_after) >= count
