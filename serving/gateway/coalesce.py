"""One socket write for a response's head and its first body bytes, where uvicorn makes two.

uvicorn writes a response's head the moment the app sends `http.response.start`, and each body
message as a write of its own: a JSON answer is two `send` system calls, and so are a stream's
head and first event. On a loopback socket each write also runs the peer's receive path and
wakes the reader: uvicorn's `send` had the most self time of any function in the gateway's
profile at concurrency 1 (docs/benchmarks.md, round 5).

`HeadCoalescingTransport` holds a response head back until the next write and sends the two as
one; a head with nothing after it in the same turn of the event loop (a stream whose first
event is still to come) goes out at the end of that turn. Only the head waits: body writes go
out at once, so the work the gateway does after the last byte (metrics, the access log) still
overlaps with the client reading the answer. (Holding every write to the end of the turn was
tried first: it moved that work in front of the last byte, and the answer came later.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD = b"HTTP/1.1 "  # how every response head uvicorn writes begins
JOIN_LIMIT = 64 * 1024  # a body larger than this is written after the head, not copied onto it


class HeadCoalescingTransport(asyncio.Transport):
    """A transport that joins a response head to the write after it."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > JOIN_LIMIT:  # not worth a copy of a large body
                self._transport.write(held)
                self._transport.write(data)
            else:
                self._transport.write(held + data)
        elif data[: len(HEAD)] == HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        elif data:
            self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send a held head now."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()  # a response written just before `connection: close` still leaves
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()


class HeadCoalescingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `HeadCoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadCoalescingTransport(transport, self.loop))
