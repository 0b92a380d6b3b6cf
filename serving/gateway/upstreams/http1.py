"""A pooled HTTP/1.1 client for upstream calls, on asyncio protocols and httptools' parser (the
C parser uvicorn serves the gateway with).

Why not aiohttp, by the numbers (docs/benchmarks.md, decision 7): against the same local
upstream, alone in a process, aiohttp spent 0.26 ms of CPU per JSON POST at concurrency 1 and
0.17-0.23 ms under load; this client 0.13 ms and 0.09-0.10 ms, about half. At concurrency 1 a
proxy's added latency is its CPU per request, and aiohttp alone was half of the 0.5 ms the
gateway may add.

What it does: keep-alive pools per origin (last in, first out; idle connections dropped before
a server's usual 5 s keep-alive runs out), http and https (the default TLS context, SNI),
Content-Length, chunked and read-until-close bodies, gzip and deflate should an upstream
compress though asked not to, back-pressure on reads, a connect timeout and a per-read idle
timeout. What it leaves out, since an upstream call needs none of it: proxies, redirects,
cookies, HTTP/2, Expect: 100-continue, pipelining. A POST is never re-sent on its own; the
dispatcher's retry policy decides that.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import quote, urlsplit

import httptools


class TransportError(Exception):
    """The wire failed: no answer, or not one that can be read."""


class ConnectFailed(TransportError):
    """No connection: refused, unreachable, a name that does not resolve, a failed TLS
    handshake. The endpoint is down, not slow."""


class ConnectTimeout(ConnectFailed):
    """No connection within the connect timeout."""


class ReadTimeout(TransportError):
    """The upstream sent nothing for longer than the read timeout."""


class Disconnected(TransportError):
    """The connection closed before the answer ended."""


class ProtocolError(TransportError):
    """Bytes that are not an HTTP/1.1 answer this client can read."""


class PoolClosed(TransportError):
    """A request after the pool was closed (the gateway is shutting down)."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}"


# Characters a request target keeps as they are: RFC 3986's unreserved, sub-delims, ':' '@'
# '/', and '%' so that a path already percent-encoded is not encoded twice.
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%"


@functools.lru_cache(maxsize=1024)
def split_url(url: str) -> tuple[Origin, str]:
    """The origin to connect to and the request target; the gateway's URLs repeat, so each is
    split once."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE + "?")
    return Origin(parts.scheme, parts.hostname, port), target


# Buffered answer bytes above which a connection stops reading until the caller catches up
# (a slow client of a fast stream), and below which it reads again.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
# Idle connections older than this are closed rather than reused: uvicorn (vLLM's server
# included) closes an idle keep-alive connection after 5 s, and a request sent just as the
# server closes would fail for nothing.
KEEP_ALIVE = 4.0
# A body this large goes in its own write rather than copied onto the head.
_JOIN_LIMIT = 64 * 1024


class Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._busy = False
        self._head: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False
        self.keep_alive = False
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._error: TransportError | None = None
        self._decoder: zlib._Decompress | None = None
        self._until_close = False

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if not self._busy:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"the upstream's answer does not parse: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._busy or self.complete:
            return
        if self._until_close and self._head is not None and self._head.done():
            self._finish()  # a body without a length ends when the connection does
            return
        reason = f": {exc}" if exc is not None else ""
        self._fail(Disconnected(f"the upstream closed the connection mid-answer{reason}"))

    def pause_writing(self) -> None:  # the request body is written whole; nothing to pause
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an informational answer (103 Early Hints); the real one follows
            self.headers = {}
            return
        self.status = status
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding != "identity":
            self._refuse(f"content-encoding {encoding!r} is not supported")
        self._until_close = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._refuse(f"the answer does not decompress: {exc}")
        if body:
            self._push(body)

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of an informational answer
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._finish()

    # -- the request's side

    def begin(self, loop: asyncio.AbstractEventLoop, data: bytes, body: bytes | None) -> None:
        """Send a request; its answer's head arrives through `wait_head`."""
        assert self.transport is not None
        self._reset()
        self._busy = True
        self._head = loop.create_future()
        if body is not None and len(body) > _JOIN_LIMIT:
            self.transport.write(data)
            self.transport.write(body)
        else:
            self.transport.write(data + body if body else data)

    async def wait_head(self, timeout: float | None) -> None:
        head = self._head
        assert head is not None
        if not head.done() and timeout is not None:
            # A timer that fails the future itself, not asyncio.timeout: no cancellation to
            # tell apart from an answer that came just in time, and a third of the cost.
            timer = asyncio.get_running_loop().call_later(timeout, self._expire, head, timeout)
            try:
                await head
            finally:
                timer.cancel()
        else:
            await head

    async def next_chunk(self, timeout: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self.complete:
                return None
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, self._stalled, timeout)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()

    @property
    def drained(self) -> bool:
        return self.complete and not self._body and self._error is None

    def end(self) -> None:
        self._busy = False

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    # -- internals

    def _push(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                rest = self._decoder.flush()
            except zlib.error as exc:
                self._fail(ProtocolError(f"the answer does not decompress: {exc}"))
                return
            if rest:
                self._push(rest)
        self.complete = True
        self._wake()

    def _fail(self, error: TransportError) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(self._error)
            self._head.exception()  # retrieved: a caller that stopped waiting must not warn
        self._wake()
        self.close()

    def _refuse(self, reason: str) -> NoReturn:
        """Stop the parser from a callback; httptools reports only that a callback failed,
        so the reason is kept first."""
        self._error = ProtocolError(reason)
        raise httptools.HttpParserError(reason)

    def _expire(self, head: asyncio.Future[None], timeout: float) -> None:
        if not head.done():
            head.set_exception(ReadTimeout(f"no answer from {self.origin} within {timeout:g}s"))

    def _stalled(self, timeout: float) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ReadTimeout(f"{self.origin} sent nothing for {timeout:g}s"))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Response:
    """An answer whose head has arrived; its body is read with `read` or `chunks`, and the
    connection goes back with `release` (or is dropped with `close`)."""

    __slots__ = ("_conn", "_pool", "headers", "status")

    def __init__(self, conn: Connection, pool: Pool) -> None:
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers
        self._conn: Connection | None = conn
        self._pool = pool

    @property
    def read_timeout(self) -> float | None:
        return self._pool.read_timeout

    async def read(self, deadline: float | None = None) -> bytes:
        """The whole body; each wait within the read timeout and, with `deadline` (loop time),
        none past it (ReadTimeout either way)."""
        # next_chunk directly, not `chunks()`: an async generator is registered with the loop
        # (a weak set) on its first step, a cost on every JSON answer.
        conn = self._conn
        if conn is None:
            raise TransportError("the answer was already released")
        timeout = self._pool.read_timeout
        parts: list[bytes] = []
        if deadline is None:
            while (chunk := await conn.next_chunk(timeout)) is not None:
                parts.append(chunk)
        else:
            clock = asyncio.get_running_loop().time
            while (part := await conn.next_chunk(_within(timeout, deadline - clock()))) is not None:
                parts.append(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def next_chunk(self, within: float | None = None) -> bytes | None:
        """The next piece of the body (None at its end), within the read timeout and, when
        `within` is given, within that many seconds (ReadTimeout either way). A loop over
        this is a stream's read without an async generator's layer."""
        conn = self._conn
        if conn is None:
            raise TransportError("the answer was already released")
        timeout = self._pool.read_timeout
        return await conn.next_chunk(timeout if within is None else _within(timeout, within))

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise TransportError("the answer was already released")
        timeout = self._pool.read_timeout
        while (chunk := await conn.next_chunk(timeout)) is not None:
            yield chunk

    @property
    def at_eof(self) -> bool:
        return self._conn is None or self._conn.drained

    def release(self) -> None:
        """Back to the pool if the answer was read to its end and the server keeps the
        connection; closed otherwise (an abandoned stream can carry no next request)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.give_back(conn)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            self._pool.give_back(conn)


def _within(timeout: float | None, left: float) -> float:
    left = max(left, 0.0)
    return left if timeout is None else min(timeout, left)


# Opens a connection to an origin with the given protocol factory. Tests replace it to fake
# the network below HTTP (e.g. an opener that raises).
Opener = Callable[[Origin, Callable[[], Connection]], Awaitable[Connection]]


class Pool:
    """Keep-alive connections to any number of origins."""

    def __init__(
        self,
        *,
        connect: float,
        read: float | None,
        opener: Opener | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect
        self.read_timeout = read
        self._opener = opener or self._open_socket
        self._tls = tls
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        first_byte: float | None = None,
    ) -> Response:
        """Send a request and wait for its answer's head: within the read timeout and, when
        `first_byte` is given, within that many seconds of this call, a connect included
        (ReadTimeout otherwise). One timer serves both, where nested `asyncio.timeout`s would
        each cost a timer and a cancellation."""
        if self.closed:
            raise PoolClosed("the gateway is shutting down")
        origin, target = split_url(url)
        data = _head(method, target, origin, headers, body)
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn = self._take(origin, start) or await self._connect(origin, first_byte)
        wait = self.read_timeout
        if first_byte is not None:
            left = max(first_byte - (loop.time() - start), 0.0)
            wait = left if wait is None else min(wait, left)
        try:
            conn.begin(loop, data, body)
            await conn.wait_head(wait)
        except BaseException:  # a cancelled or failed wait leaves an answer half-read
            conn.close()
            self.give_back(conn)
            raise
        return Response(conn, self)

    def give_back(self, conn: Connection) -> None:
        conn.end()
        transport = conn.transport
        if (
            self.closed
            or conn.lost
            or not (conn.drained and conn.keep_alive)
            or transport is None
            or transport.is_closing()
        ):
            conn.close()
            self._open.discard(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.origin, []).append(conn)

    async def aclose(self) -> None:
        self.closed = True
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # the sockets close in the loop's next turn

    def _take(self, origin: Origin, now: float) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if conn.lost or transport is None or transport.is_closing():
                self._open.discard(conn)
                continue
            if now - conn.idle_since > KEEP_ALIVE:
                conn.close()
                self._open.discard(conn)
                continue
            return conn
        return None

    async def _connect(self, origin: Origin, first_byte: float | None) -> Connection:
        limit = self.connect_timeout
        if first_byte is not None and first_byte < limit:
            limit = first_byte
        try:
            async with asyncio.timeout(limit):
                conn = await self._opener(origin, lambda: Connection(origin))
        except TimeoutError as exc:  # the deadline, or the kernel's own connect timeout
            if limit < self.connect_timeout:  # the caller's first-byte budget ran out first
                raise ReadTimeout(f"no answer from {origin} within {limit:g}s") from exc
            raise ConnectTimeout(
                f"no connection to {origin} within {self.connect_timeout:g}s"
            ) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise ConnectFailed(f"cannot connect to {origin}: {exc}") from exc
        if self.closed:
            conn.close()
            raise PoolClosed("the gateway is shutting down")
        self._open.add(conn)
        return conn

    async def _open_socket(self, origin: Origin, factory: Callable[[], Connection]) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if origin.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        _, conn = await loop.create_connection(
            factory, origin.host, origin.port, ssl=tls, server_hostname=origin.host if tls else None
        )
        return conn


def _head(
    method: str, target: str, origin: Origin, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {origin.host_header}\r\n"]
    # Identity: a compressed stream would arrive in bursts the relay cannot pass on as they come.
    lines.append("accept-encoding: identity\r\n")
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"content-length: {len(body)}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:  # a header value from config that HTTP cannot carry
        raise ValueError("a request header is not latin-1 text") from exc
