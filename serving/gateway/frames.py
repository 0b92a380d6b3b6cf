"""The SSE frame pipeline: bytes in, frames (with their original bytes) out, each classified by
the stream's dialect grammar.

One pipeline serves every use of an upstream stream: priming (wait for the first token),
relaying a same-dialect stream byte for byte, reading its usage, deciding whether it finished,
and remembering the partial answer so a broken stream can be continued elsewhere. Frames are
split on the raw bytes (no decode of what is only relayed); only the `data:` payload is parsed,
once, by the grammar, with orjson: every relayed frame is parsed now (to catch a malformed one),
and orjson parses these small chunks 3-4x faster than the standard library (measured on the
benchmark's stream frames: 11 µs vs 37-51 µs for six of them).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import orjson

from serving.gateway import canonical as c
from serving.gateway.errors import UpstreamError
from serving.gateway.redaction import redact


@dataclass(slots=True)
class Frame:
    raw: bytes  # exactly as received, its terminating blank line included
    event: str | None
    data: bytes


class StreamBroken(UpstreamError):
    """A stream that broke after it started, for a reason the transport does not tell."""

    def __init__(self, message: str, kind: str, *, upstream: str | None = None) -> None:
        super().__init__(message, reason="stream", upstream=upstream)
        self.kind = kind  # malformed | error | unfinished


class Kind(IntEnum):
    """What a frame means to the stream (a frame that both carries content and finishes is
    classified FINISH; the grammar has noted its content either way)."""

    OTHER = 0  # role-only opening chunk, ping, message start, block start/stop, comments
    CONTENT = 1  # text, a tool call or its arguments, a refusal
    USAGE = 2
    FINISH = 3  # the answer is complete (a finish reason / stop reason)
    DONE = 4  # the dialect's end-of-stream sentinel ([DONE], message_stop)
    ERROR = 5  # an in-stream error event from the upstream
    MALFORMED = 6  # not the dialect's grammar: bad JSON, not an object


def split_frames(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete frames (terminator included) and the unterminated rest."""
    if b"\r" in buf:
        return _split_any(buf)
    frames: list[bytes] = []
    start = 0
    while True:
        end = buf.find(b"\n\n", start)
        if end < 0:
            return frames, buf[start:]
        frames.append(buf[start : end + 2])
        start = end + 2


def _split_any(buf: bytes) -> tuple[list[bytes], bytes]:
    """Frames ended by any of the blank-line forms SSE allows (\\r\\n, \\n, \\r line ends)."""
    frames: list[bytes] = []
    start = 0
    while True:
        best, width = -1, 0
        for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
            at = buf.find(sep, start)
            if at >= 0 and (best < 0 or at < best):
                best, width = at, len(sep)
        if best < 0:
            return frames, buf[start:]
        frames.append(buf[start : best + width])
        start = best + width


def parse_frame(raw: bytes) -> Frame | None:
    """The frame's event name and data; None for a frame of comments only."""
    if raw.startswith(b"data: ") and raw.count(b"\n") <= 2 and b"\r" not in raw:
        return Frame(raw, None, raw[6:].rstrip(b"\n"))  # the common one-line frame
    event: str | None = None
    data: list[bytes] = []
    for line in raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        key, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if key == b"data":
            data.append(value)
        elif key == b"event":
            event = value.decode("utf-8", "replace")
    if not data and event is None:
        return None
    return Frame(raw, event, b"\n".join(data))


class Encoder(Protocol):
    def encode(self, event: c.StreamEvent) -> bytes: ...


class Grammar(abc.ABC):
    """A dialect's reading of its own stream, and what it remembers of the answer so far.

    Subclasses classify one parsed frame at a time and keep the state below up to date; they
    never build objects for frames that are only relayed, beyond the parsed JSON.
    """

    closing: bytes = b""  # what ends a finished stream that came without its sentinel
    sentinel: bytes = b""

    def __init__(self) -> None:
        self.finished = False  # the answer is complete (finish reason seen)
        self.done = False  # the sentinel arrived
        self.content = 0  # frames that carried content (a rough output token count)
        self.text: list[str] = []  # the answer's text deltas, in order
        self.tool_calls = 0  # tool calls started
        self.usage = c.Usage()
        self.usage_seen = False
        self.error: str | None = None  # the upstream's in-stream error message
        self.model: str | None = None
        self.blocks = 0  # content blocks started (the next dense index), where the dialect counts
        self.open_text: int | None = None  # the text block still open, where it has blocks

    def classify(self, frame: Frame) -> Kind:
        if frame.data == self.sentinel and self.sentinel:
            self.done = True
            return Kind.DONE
        try:
            body = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            return Kind.MALFORMED
        if not isinstance(body, dict):
            return Kind.MALFORMED
        try:
            return self.read(frame.event, body)
        except (TypeError, AttributeError, ValueError, KeyError):
            return Kind.MALFORMED  # valid JSON in the wrong shape

    @abc.abstractmethod
    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        """Classify one frame's parsed data and update the state."""

    @abc.abstractmethod
    def continuation_encoder(self) -> Encoder:
        """Canonical events → this dialect's frames, continuing the stream relayed so far."""

    @property
    def partial_text(self) -> str:
        return "".join(self.text)

    @property
    def tool_open(self) -> bool:
        """A tool call was started: its arguments cannot be continued mid-way."""
        return self.tool_calls > 0


class OpaqueGrammar(Grammar):
    """For a relayed stream of a shape no dialect grammar reads (an endpoint the gateway only
    forwards): every JSON-object frame is content, an `error` frame an error, and a clean close
    after content a complete stream. Nothing is continued (no text is known)."""

    def read(self, event: str | None, body: dict[str, Any]) -> Kind:
        if event == "error" or body.get("type") == "error" or "error" in body:
            err = body.get("error")
            self.error = str(err.get("message") if isinstance(err, dict) else err)
            return Kind.ERROR
        self.content += 1
        self.tool_calls = 1  # its text is unknown: never continued
        self.finished = True
        return Kind.CONTENT

    def continuation_encoder(self) -> Encoder:
        raise NotImplementedError("an opaque stream is never continued")


class Pipeline:
    """Chunks in; the bytes to relay out, and the frame that broke the stream, if one did."""

    __slots__ = ("_buf", "_secrets", "grammar")

    def __init__(self, grammar: Grammar, secrets: tuple[str, ...] = ()) -> None:
        self._buf = b""
        self.grammar = grammar
        self._secrets = secrets  # the upstream's key: masked in an error event's message

    def push(self, chunk: bytes) -> tuple[bytes, StreamBroken | None]:
        """The complete, well-formed frames of what arrived so far, as they came; a malformed
        frame or an upstream error event stops the relay before it (nothing after it is sent)."""
        buf = self._buf + chunk if self._buf else chunk
        raws, self._buf = split_frames(buf)
        if not raws:
            return b"", None
        grammar = self.grammar
        for n, raw in enumerate(raws):
            frame = parse_frame(raw)
            if frame is None:
                continue
            kind = grammar.classify(frame)
            if kind >= Kind.ERROR:
                return b"".join(raws[:n]), self._failure(kind)
        if len(raws) == 1:
            return raws[0], None
        return (buf if not self._buf else b"".join(raws)), None

    def close(self) -> tuple[bytes, StreamBroken | None]:
        """The upstream closed: a last frame without its blank line still counts."""
        rest, self._buf = self._buf, b""
        if not rest.strip():
            return b"", None
        frame = parse_frame(rest)
        if frame is None:
            return b"", None
        kind = self.grammar.classify(frame)
        if kind >= Kind.ERROR:
            return b"", self._failure(kind)
        return rest.rstrip(b"\r\n") + b"\n\n", None

    def _failure(self, kind: Kind) -> StreamBroken:
        if kind == Kind.ERROR:
            # The upstream's message reaches the client: keys and tokens in it are masked.
            text = redact(self.grammar.error or "unknown", self._secrets)
            message = f"upstream stream error: {text}"
            return StreamBroken(message, "error")
        return StreamBroken("upstream sent a malformed stream frame", "malformed")


class FrameReader:
    """Parsed frames of a byte stream cut anywhere: `feed` each piece as it arrives, `close` at
    the end (a last frame without its blank line still counts). Plain calls, where an async
    generator over the chunks cost a layer per chunk of every stream."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        raws, self._buf = split_frames(self._buf + chunk if self._buf else chunk)
        return [frame for raw in raws if (frame := parse_frame(raw)) is not None]

    def close(self) -> list[Frame]:
        buf, self._buf = self._buf, b""
        frame = parse_frame(buf) if buf.strip() else None
        return [] if frame is None else [frame]
