"""HeadCoalescingTransport: a response head and the write after it reach the socket as one,
every byte in order, whatever the sequence of writes; and uvicorn runs on it unchanged."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.coalesce import JOIN_LIMIT, HeadCoalescingTransport
from tests.support.servers import serve

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Socket(asyncio.Transport):
    """The real transport's place: records each write (one per system call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0  # the kernel took every write


def wrapped() -> tuple[HeadCoalescingTransport, Socket]:
    sock = Socket()
    return HeadCoalescingTransport(sock, asyncio.get_running_loop()), sock


async def test_a_head_and_its_body_are_one_write() -> None:
    t, sock = wrapped()
    t.write(HEAD)
    assert sock.writes == []
    t.write(b"{}")
    assert sock.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the turn's end finds nothing held
    assert sock.writes == [HEAD + b"{}"]


async def test_a_head_alone_leaves_at_the_end_of_the_turn() -> None:
    t, sock = wrapped()
    t.write(HEAD)
    await asyncio.sleep(0)
    assert sock.writes == [HEAD]
    t.write(b"data: 1\n\n")  # a stream's later event: at once
    assert sock.writes == [HEAD, b"data: 1\n\n"]


async def test_body_writes_are_never_held() -> None:
    t, sock = wrapped()
    t.write(b"a")
    t.write(b"")
    t.write(memoryview(b"b"))
    assert sock.writes == [b"a", b"b"]


async def test_a_large_body_is_not_copied_onto_its_head() -> None:
    t, sock = wrapped()
    body = b"x" * (JOIN_LIMIT + 1)
    t.write(HEAD)
    t.write(body)
    assert sock.writes == [HEAD, body]


async def test_close_sends_a_held_head_first_and_abort_drops_it() -> None:
    t, sock = wrapped()
    t.write(HEAD)
    t.close()
    assert sock.writes == [HEAD] and sock.closed
    t2, sock2 = wrapped()
    t2.write(HEAD)
    t2.abort()
    await asyncio.sleep(0)
    assert sock2.writes == [] and sock2.aborted


async def test_a_head_held_until_the_peer_is_gone_is_not_written() -> None:
    t, sock = wrapped()
    t.write(HEAD)
    assert t.get_write_buffer_size() == len(HEAD)
    sock.closed = True  # the connection was lost meanwhile
    await asyncio.sleep(0)
    assert sock.writes == []


chunks = st.lists(
    st.one_of(st.just(HEAD), st.binary(max_size=40), st.just(b"x" * (JOIN_LIMIT + 1))),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(turns=st.lists(chunks, max_size=5))
def test_every_byte_arrives_in_order(turns: list[list[bytes]]) -> None:
    async def run() -> None:
        t, sock = wrapped()
        for turn in turns:
            for data in turn:
                t.write(data)
            await asyncio.sleep(0)
        assert b"".join(sock.writes) == b"".join(b"".join(turn) for turn in turns)
        # a head is held only while nothing follows it in its turn
        assert len(sock.writes) <= sum(len([d for d in turn if d]) for turn in turns)

    asyncio.run(run())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await asyncio.sleep(0.01)  # each event in a later turn than the head
            await send({"type": "http.response.body", "body": b"e%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_uvicorn_answers_through_it_with_keep_alive() -> None:
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(3):  # one connection, several answers
                r = await client.get("/json")
                assert r.status_code == 200 and r.json() == {"ok": True}
            r = await client.get("/stream")
            assert r.text == "e0;e1;e2;"
            r = await client.get("/empty")
            assert r.status_code == 204 and r.content == b""
            r = await client.head("/json")
            assert r.status_code == 200 and r.content == b""
            r = await client.get("/json", headers={"connection": "close"})
            assert r.json() == {"ok": True}


def test_a_json_answer_arrives_as_one_segment() -> None:
    """Read once the answer is surely sent: head and body come in one recv, not two."""
    with serve(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /json HTTP/1.1\r\nhost: x\r\n\r\n")
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b'\r\n\r\n{"ok":true}')
