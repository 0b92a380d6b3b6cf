"""Bounded memory per request: a body over `server.max_body_bytes` is refused with 413 before
it is in memory, whether it declares its length or comes chunked. Measured on a real
`serving gateway` process: a 500 MB upload (streamed from a generator) against a 1 MiB limit
grows the gateway's peak RSS by less than 10 MB."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.load import GatewayProcess, gateway_process

MiB = 1024 * 1024
UPLOAD = 500 * 1000 * 1000
PIECE = b'{"model":"m","messages":[{"role":"user","content":"' + b"x" * (256 * 1024)


def config(limit: int) -> dict[str, Any]:
    return {
        "server": {"max_body_bytes": limit},
        "upstreams": [
            {"name": "up", "base_url": "http://127.0.0.1:9/v1", "health": {"enabled": False}}
        ],
        "routes": [{"model": "m", "targets": [{"upstream": "up", "model": "m"}]}],
    }


async def _pieces(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = PIECE[: total - sent]
        sent += len(piece)
        yield piece


async def _upload(port: int, chunked: bool) -> tuple[int, dict[str, Any], int]:
    """POST 500 MB, writing while the server still reads; the status, the error body and how
    many body bytes were written before the answer came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "transfer-encoding: chunked" if chunked else f"content-length: {UPLOAD}"
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"{framing}\r\n\r\n".encode()
    )
    written = 0

    async def send_body() -> None:
        nonlocal written
        with contextlib.suppress(OSError):
            async for piece in _pieces(UPLOAD):
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
                written += len(piece)
                # drain() returns without yielding while the kernel takes the bytes, and the
                # server reads (and drops) what follows a refused body to keep the connection:
                # without a turn for the reader, this loop would write all 500 MB first.
                await asyncio.sleep(0)
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    sender = asyncio.create_task(send_body())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        status = int(head.split()[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await reader.readexactly(length))
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return status, body, written


async def _peak_rss_during(gw: GatewayProcess, work: Any) -> tuple[Any, int, int]:
    """Run `work`, sampling the gateway's RSS every 5 ms: its result, RSS before, peak RSS."""
    before = gw.rss()
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, gw.rss())
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    try:
        result = await work
    finally:
        done.set()
        await sampler
    return result, before, max(peak, gw.rss())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_500_mb_upload_is_refused_with_413_without_growing_memory(
    tmp_path: Path, chunked: bool
) -> None:
    async with gateway_process(tmp_path, config(MiB)) as gw:
        (status, body, written), before, peak = await _peak_rss_during(
            gw, _upload(gw.port, chunked)
        )
    assert status == 413
    assert body["error"]["type"] == "invalid_request_error"
    assert "limit" in body["error"]["message"]
    assert peak - before < 10 * MiB, f"RSS grew {(peak - before) / MiB:.1f} MiB"
    # The gateway stopped reading: nowhere near the 500 MB was taken off the wire.
    assert written < 64 * MiB, f"{written / MiB:.0f} MiB written before the 413"
