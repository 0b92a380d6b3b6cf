"""Cheap pieces for load and shutdown tests: an asyncio fake streaming upstream, a raw HTTP
client, and `serving gateway` run as a real subprocess.

The upstream and the clients are plain asyncio streams (no framework) so a thousand of them fit
in one test process on two cores; the gateway is a subprocess so its RSS and its exit status
are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import free_port


def openai_frame(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-load",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class StreamUpstream:
    """An OpenAI-compatible upstream whose every chat answer is a stream of `frames` text
    frames, `delay` seconds apart; counts streams in flight and their peak."""

    def __init__(self, frames: int = 10, delay: float = 0.1, whole_delay: float = 0.0) -> None:
        self.frames = frames
        self.delay = delay
        self.whole_delay = whole_delay  # a request that is not a stream waits this long first
        self.active = 0
        self.peak = 0
        self.served = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if head.startswith(b"GET /stats"):
                stats = json.dumps(
                    {"active": self.active, "peak": self.peak, "served": self.served}
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(stats), stats)
                )
                await writer.drain()
                return
            if head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                return
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                if b'"stream": true' not in body and b'"stream":true' not in body:
                    await asyncio.sleep(self.whole_delay)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"connection: close\r\n\r\n"
                )
                writer.write(openai_frame({"role": "assistant", "content": ""}))
                await writer.drain()
                for i in range(self.frames):
                    await asyncio.sleep(self.delay)
                    writer.write(openai_frame({"content": f"t{i} "}))
                    await writer.drain()
                writer.write(openai_frame({}, "stop") + b"data: [DONE]\n\n")
                await writer.drain()
                self.served += 1
            finally:
                self.active -= 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    first_at: float = 0.0  # when the first body bytes arrived (monotonic)
    done_at: float = 0.0  # when the response ended


async def post(
    port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Answer:
    """One POST over a fresh connection, read to the end (the response, or the stream)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: close\r\n{extra}\r\n".encode()
            + data
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        first = await reader.read(65536)
        first_at = time.monotonic()
        rest = await reader.read()
        raw = first + rest
        if hdrs.get("transfer-encoding") == "chunked":
            raw = dechunk(raw)
        return Answer(status, hdrs, raw, first_at, time.monotonic())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def dechunk(raw: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(raw):
        j = raw.index(b"\r\n", i)
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            break
        out += raw[j + 2 : j + 2 + size]
        i = j + 2 + size + 2
    return bytes(out)


@dataclass
class GatewayProcess:
    """`serving gateway` as a subprocess; its output goes to a file the test can read."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ops_port: int | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident set size in bytes (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def gateway_process(
    tmp_path: Path, config: dict[str, Any], *, ops_port: int | None = None
) -> AsyncIterator[GatewayProcess]:
    """Start it and wait (without blocking the loop: fake upstreams may run on it) until it
    answers /health; kill it on exit if the test did not stop it."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [sys.executable, "-m", "serving", "gateway", "--config", str(path)]
    argv += ["--port", str(port), "--log-level", "warning"]
    if ops_port is not None:
        argv += ["--ops-port", str(ops_port)]
    log_path = tmp_path / "gateway.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    gw = GatewayProcess(proc, port, log_path, ops_port, log)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1, trust_env=False) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"gateway exited {proc.returncode}:\n{gw.output()}")
                try:
                    if (await client.get(gw.url + "/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway did not start:\n{gw.output()}")
                await asyncio.sleep(0.1)
        yield gw
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        log.close()


class UpstreamProcess:
    """A `StreamUpstream` in a process of its own (its own core and GIL), so a load test's
    clients cannot slow it down; its counters come from GET /stats."""

    def __init__(self, frames: int, delay: float) -> None:
        self.frames = frames
        self.delay = delay
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> UpstreamProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.load",
            str(self.frames),
            str(self.delay),
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        self.port = int(line)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            data: dict[str, int] = (await client.get(self.url + "/stats")).json()
            return data


async def _serve_forever(frames: int, delay: float) -> None:
    upstream = StreamUpstream(frames, delay)
    await upstream.start()
    print(upstream.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve_forever(int(sys.argv[1]), float(sys.argv[2])))
