"""The gateway's HTTP/1.1 client against servers on 127.0.0.1 that write scripted bytes: the
body framings, keep-alive and its limits, timeouts, broken and garbled answers, back-pressure,
TLS, and a property over how a chunked body may be cut up on the wire."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.upstreams import http1
from serving.gateway.upstreams.http1 import (
    ConnectFailed,
    Connection,
    ConnectTimeout,
    Disconnected,
    Origin,
    Pool,
    PoolClosed,
    ProtocolError,
    ReadTimeout,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server that runs `handler` on each connection; yields its base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up first, as several tests make it
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (the client always sends a content-length with a body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answer(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in extra)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


def chunked(*parts: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    for part in parts:
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def recording(opened: list[Connection]) -> http1.Opener:
    """The socket opener, keeping each connection it made for the test to look at."""

    async def opener(origin: Origin, factory: Callable[[], Connection]) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(factory, origin.host, origin.port)
        opened.append(conn)
        return conn

    return opener


async def ask_ok(pool: Pool, url: str, times: int, pause: float = 0.0) -> None:
    """`times` requests one after the other, each answered b"ok" and released."""
    for _ in range(times):
        r = await pool.request("POST", url + "/", {}, b"{}")
        assert await r.read() == b"ok"
        r.release()
        await asyncio.sleep(pause)


async def refused_with(
    handler: Handler, error: type[Exception], *, read: float = 5, match: str | None = None
) -> None:
    """A request to a server running `handler` raises `error` before any answer is read."""
    pool = Pool(connect=1, read=read)
    async with scripted(handler) as url:
        with pytest.raises(error, match=match):
            await pool.request("POST", url + "/", {}, b"{}")
        await pool.aclose()


async def test_a_sized_answer_and_the_connection_reused() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            heads.append(head)
            writer.write(answer(b'{"echo": ' + body + b"}", "content-type: application/json"))

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        for i in range(3):
            r = await pool.request("POST", url + "/v1/chat", {"x-n": str(i)}, b"[%d]" % i)
            assert r.status == 200
            assert r.headers["content-type"] == "application/json"
            assert await r.read() == b'{"echo": [%d]}' % i
            assert r.at_eof
            r.release()
        await pool.aclose()
    assert len(opened) == 1  # one keep-alive connection carried all three
    first = heads[0].decode()
    assert first.startswith("POST /v1/chat HTTP/1.1\r\n")
    assert f"host: {url.removeprefix('http://')}\r\n" in first
    assert "x-n: 0\r\n" in first and "content-length: 3\r\n" in first


async def test_a_chunked_answer_arrives_piece_by_piece() -> None:
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await go.wait()  # the second piece only once the client has the first
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/s", {}, b"{}")
        got = []
        async for chunk in r.chunks():
            got.append(chunk)
            go.set()
        assert got == [b"first", b"second"]
        r.release()
        await pool.aclose()


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        for _ in range(2):
            r = await pool.request("GET", url + "/", {})
            assert await r.read() == b"all of it"
            r.release()
        await pool.aclose()
    assert len(opened) == 2  # a closed connection is never handed out again


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
    ],
)
async def test_a_compressed_answer_is_decoded(
    encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    text = b"compressed though the client asked for identity " * 50

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        assert b"accept-encoding: identity\r\n" in head
        writer.write(answer(pack(text), f"content-encoding: {encoding}"))

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        assert await r.read() == text
        r.release()
        await pool.aclose()


async def test_an_unknown_encoding_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"xx", "content-encoding: br"))

    await refused_with(handler, ProtocolError, match="br")


async def test_an_informational_answer_is_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n")
        writer.write(answer(b"final", "x-final: yes"))

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        assert r.status == 200
        assert "link" not in r.headers and r.headers["x-final"] == "yes"
        assert await r.read() == b"final"
        r.release()
        await pool.aclose()


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -4\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    ],
)
async def test_bytes_that_are_no_answer_are_a_protocol_error(garbage: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(garbage)
        await asyncio.sleep(5)  # and keep the connection open: the parser must decide

    await refused_with(handler, ProtocolError, read=2)


async def test_a_connection_closed_mid_body_is_disconnected() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
        await writer.drain()
        writer.close()

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        with pytest.raises(Disconnected):
            await r.read()
        r.release()
        await pool.aclose()


async def test_a_connection_closed_before_the_head_is_disconnected() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    await refused_with(handler, Disconnected)


async def test_silence_before_the_head_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    pool = Pool(connect=1, read=0.2)
    async with scripted(handler) as url:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ReadTimeout):
            await pool.request("POST", url + "/", {}, b"{}")
        assert loop.time() - start < 2
        await pool.aclose()


async def test_a_stalled_stream_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await asyncio.sleep(5)

    pool = Pool(connect=1, read=0.2)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        chunks = r.chunks()
        assert await anext(chunks) == b"hi"
        with pytest.raises(ReadTimeout):
            await anext(chunks)
        r.release()
        await pool.aclose()


async def test_a_refused_connection_fails_to_connect() -> None:
    async with scripted(read_request_only) as url:
        pass  # the server is gone: its port refuses
    pool = Pool(connect=1, read=1)
    with pytest.raises(ConnectFailed) as info:
        await pool.request("POST", url + "/", {}, b"{}")
    assert not isinstance(info.value, ConnectTimeout)
    await pool.aclose()


async def read_request_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)


async def test_a_connect_that_hangs_is_a_connect_timeout() -> None:
    async def black_hole(origin: Origin, factory: Callable[[], Connection]) -> Connection:
        await asyncio.sleep(10)
        raise AssertionError("the connect timeout did not fire")

    pool = Pool(connect=0.1, read=1, opener=black_hole)
    with pytest.raises(ConnectTimeout):
        await pool.request("POST", "http://127.0.0.1:9/", {}, b"{}")
    await pool.aclose()


async def test_an_abandoned_answer_closes_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(chunked(b"one", b"two"))

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        r.release()  # unread: the rest of its body would arrive as the next answer's start
        r = await pool.request("POST", url + "/", {}, b"{}")
        assert await r.read() == b"onetwo"
        r.release()
        await pool.aclose()
    assert len(opened) == 2
    assert opened[0].lost


async def test_a_cancelled_request_closes_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    opened: list[Connection] = []
    pool = Pool(connect=1, read=None, opener=recording(opened))
    async with scripted(handler) as url:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request("POST", url + "/", {}, b"{}")
        assert opened[0].lost
        await pool.aclose()


async def test_a_connection_idle_past_keep_alive_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"ok"))

    monkeypatch.setattr(http1, "KEEP_ALIVE", 0.05)
    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        await ask_ok(pool, url, 2, pause=0.1)
        await pool.aclose()
    assert len(opened) == 2
    assert opened[0].lost  # closed by the pool, not left to the garbage collector


async def test_a_server_that_closes_an_idle_connection_costs_no_request() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()
        # and close while the client holds it idle, as a server's keep-alive timeout does

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        await ask_ok(pool, url, 2, pause=0.05)  # the pause: the close reaches the client
        await pool.aclose()


async def test_connection_close_is_honoured() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer(b"ok", "connection: close"))

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        await ask_ok(pool, url, 2)
        await pool.aclose()
    assert len(opened) == 2


async def test_a_slow_reader_pauses_a_fast_stream() -> None:
    piece = b"x" * 65536
    count = 64  # 4 MiB, far above the high-water mark

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(count):
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        await asyncio.sleep(0.3)  # the server writes as fast as it may; nobody reads
        transport = opened[0].transport
        assert transport is not None
        assert not transport.is_reading()  # paused at the high-water mark, not buffering 4 MiB
        total = sum([len(chunk) async for chunk in r.chunks()])
        assert total == count * len(piece)
        r.release()
        await pool.aclose()


async def test_a_large_body_is_sent_whole() -> None:
    big = b"y" * (3 * 1024 * 1024)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        writer.write(answer(str(len(body)).encode()))

    pool = Pool(connect=1, read=5)
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, big)
        assert await r.read() == str(len(big)).encode()
        r.release()
        await pool.aclose()


@pytest.mark.parametrize("header", [{"x-a": "1\r\nx-injected: 2"}, {"x-a\nb": "1"}])
async def test_a_header_with_a_line_break_is_refused(header: dict[str, str]) -> None:
    pool = Pool(connect=1, read=1)
    with pytest.raises(ValueError, match="line break"):
        await pool.request("POST", "http://127.0.0.1:9/", header, b"{}")
    await pool.aclose()


async def test_a_closed_pool_closes_its_idle_connections_and_opens_none() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await asyncio.sleep(5)

    opened: list[Connection] = []
    pool = Pool(connect=1, read=5, opener=recording(opened))
    async with scripted(handler) as url:
        r = await pool.request("POST", url + "/", {}, b"{}")
        await r.read()
        r.release()
        await pool.aclose()
        assert opened[0].lost
        with pytest.raises(PoolClosed):
            await pool.request("POST", url + "/", {}, b"{}")


async def test_https_with_the_servers_certificate_trusted() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"secret"))

    async with scripted(handler, tls=server_tls) as url:
        trusted = Pool(connect=1, read=5, tls=client_tls)
        r = await trusted.request("POST", url + "/", {}, b"{}")
        assert await r.read() == b"secret"
        r.release()
        await trusted.aclose()
        untrusted = Pool(connect=1, read=5)  # the system's roots: the test CA is not one
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.request("POST", url + "/", {}, b"{}")
        await untrusted.aclose()


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://h/v1", Origin("http", "h", 80), "/v1"),
        ("https://h:8443", Origin("https", "h", 8443), "/"),
        ("http://[::1]:8000/a b?q=1 2", Origin("http", "::1", 8000), "/a%20b?q=1%202"),
        ("http://h/already%20quoted", Origin("http", "h", 80), "/already%20quoted"),
    ],
)
def test_urls_split_into_origin_and_target(url: str, origin: Origin, target: str) -> None:
    assert split_url(url) == (origin, target)


def test_host_headers_name_the_port_only_when_it_is_not_the_default() -> None:
    assert Origin("https", "api.example", 443).host_header == "api.example"
    assert Origin("http", "::1", 8000).host_header == "[::1]:8000"


@pytest.mark.parametrize("url", ["ftp://h/", "http:///x", "h:80"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        split_url(url)


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.binary(min_size=1, max_size=300), min_size=0, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40),
)
def test_a_chunked_body_reads_back_however_the_wire_cuts_it(
    parts: list[bytes], cuts: list[int]
) -> None:
    """The answer is written in segments of arbitrary sizes, each flushed alone."""
    wire = chunked(*parts)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        at, i = 0, 0
        while at < len(wire):
            size = cuts[i % len(cuts)]
            writer.write(wire[at : at + size])
            await writer.drain()
            await asyncio.sleep(0)
            at, i = at + size, i + 1

    async def run() -> bytes:
        pool = Pool(connect=1, read=5)
        async with scripted(handler) as url:
            r = await pool.request("POST", url + "/", {}, b"{}")
            body = await r.read()
            r.release()
            await pool.aclose()
        return body

    assert asyncio.run(run()) == b"".join(parts)
