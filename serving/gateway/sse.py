"""Server-sent events: the frame encoders, and a text view of the frame pipeline's decoding.

Decoding lives in frames.py (one splitter and parser for every stream); `SSEDecoder` gives the
same frames as text, for callers that read whole SSE bodies (tests, tools).
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.gateway.frames import parse_frame, split_frames


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
        raws, self._buf = split_frames(self._buf + chunk)
        return [event for raw in raws if (event := _text(raw)) is not None]

    def flush(self) -> list[SSEEvent]:
        """The last frame when a stream ends without the final blank line."""
        rest, self._buf = self._buf.strip(), b""
        event = _text(rest) if rest else None
        return [event] if event is not None else []


def _text(raw: bytes) -> SSEEvent | None:
    frame = parse_frame(raw)
    return None if frame is None else SSEEvent(frame.event, frame.data.decode("utf-8"))


def data_frame(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def named_frame(event: str, payload: str) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + payload.encode() + b"\n\n"
