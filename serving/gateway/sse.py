"""Server-sent events: an incremental decoder for upstream streams and the frame encoders.

The decoder works on raw byte chunks as they arrive (no re-buffering of whole responses) and
yields one `SSEEvent` per blank-line-terminated frame.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Feed byte chunks, get complete events. Handles \\n, \\r\\n and split chunks."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        if b"\r" in self._buf:
            self._buf = self._buf.replace(b"\r\n", b"\n")
        events: list[SSEEvent] = []
        while True:
            end = self._buf.find(b"\n\n")
            if end < 0:
                return events
            frame, self._buf = self._buf[:end], self._buf[end + 2 :]
            event = _parse_frame(frame.decode("utf-8"))
            if event is not None:
                events.append(event)

    def flush(self) -> list[SSEEvent]:
        """The last frame when a stream ends without the final blank line."""
        rest, self._buf = self._buf.strip(), b""
        if not rest:
            return []
        event = _parse_frame(rest.decode("utf-8"))
        return [event] if event is not None else []


def _parse_frame(frame: str) -> SSEEvent | None:
    name: str | None = None
    data: list[str] = []
    for line in frame.split("\n"):
        if not line or line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if key == "data":
            data.append(value)
        elif key == "event":
            name = value
    if not data and name is None:
        return None
    return SSEEvent(name, "\n".join(data))


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


def data_frame(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def named_frame(event: str, payload: str) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + payload.encode() + b"\n\n"
