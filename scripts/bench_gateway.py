#!/usr/bin/env python3
"""Gateway overhead benchmark: CPU time the gateway process spends per request, and the latency
it adds, against a fake OpenAI-compatible upstream on 127.0.0.1.

Runs the fake upstream and the gateway as separate processes, drives a bounded number of
requests per scenario, reads the gateway's CPU time from /proc before and after, and writes
reports/bench_gateway.json. Target (docs/benchmarks.md): <= 2 ms CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
}


def _stream_body() -> bytes:
    frames = []
    for piece in ["Paris", " is", " the", " capital", "."]:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        frames.append(f"data: {json.dumps(chunk)}\n\n")
    last = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }
    frames.append(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n")
    return "".join(frames).encode()


def run_fake_upstream(port: int) -> None:
    """A minimal raw-ASGI upstream, so the upstream's own cost stays small and constant."""
    import uvicorn

    body_json = json.dumps(COMPLETION).encode()
    body_sse = _stream_body()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"].endswith("/health"):
            body, ctype = b"", b"text/plain"
        elif b'"stream": true' in raw or b'"stream":true' in raw:
            body, ctype = body_sse, b"text/event-stream"
        else:
            body, ctype = body_json, b"application/json"
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]}
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"benchmark: {url} did not come up")


SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai_passthrough": (
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    ),
    "openai_passthrough_stream": (
        "/v1/chat/completions",
        {
            "model": "m",
            "stream": True,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        },
    ),
    "anthropic_translated": (
        "/v1/messages",
        {
            "model": "m",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        },
    ),
    "anthropic_translated_stream": (
        "/v1/messages",
        {
            "model": "m",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        },
    ),
}


async def drive(
    base: str, path: str, body: dict[str, Any], n: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    payload = json.dumps(body).encode()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                start = time.perf_counter()
                resp = await client.post(
                    path, content=payload, headers={"content-type": "application/json"}
                )
                await resp.aread()
                if resp.status_code != 200:
                    raise SystemExit(f"benchmark: {path} answered {resp.status_code}: {resp.text}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (bounded)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--report", default=str(ROOT / "reports" / "bench_gateway.json"))
    parser.add_argument("--fake-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_upstream:
        run_fake_upstream(args.fake_upstream)
        return 0

    up_port, gw_port = free_port(), free_port()
    config = {
        "upstreams": [{"name": "fake", "base_url": f"http://127.0.0.1:{up_port}/v1"}],
        "routes": [{"model": "m", "targets": [{"upstream": "fake", "model": "m"}]}],
    }
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(config, f)  # JSON is YAML
    try:
        procs.append(subprocess.Popen([sys.executable, __file__, "--fake-upstream", str(up_port)]))
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving",
                "gateway",
                "--config",
                f.name,
                "--port",
                str(gw_port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
        )
        procs.append(gateway)
        wait_ready(f"http://127.0.0.1:{up_port}/health")
        wait_ready(f"http://127.0.0.1:{gw_port}/health")
        up, gw = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
        results: dict[str, Any] = {}
        for name, (path, body) in SCENARIOS.items():
            asyncio.run(drive(gw, path, body, 200, args.concurrency))  # warm-up
            direct_path = "/v1/chat/completions"
            direct_body = {
                "stream": body.get("stream", False),
                **SCENARIOS["openai_passthrough"][1],
            }
            direct = asyncio.run(
                drive(up, direct_path, direct_body, args.requests // 4, args.concurrency)
            )
            before = cpu_seconds(gateway.pid)
            lat = asyncio.run(drive(gw, path, body, args.requests, args.concurrency))
            cpu_ms = (cpu_seconds(gateway.pid) - before) * 1000 / args.requests
            results[name] = {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "gateway_cpu_ms_per_request": round(cpu_ms, 3),
                "latency_p50_ms": round(pct(lat, 50), 3),
                "latency_p99_ms": round(pct(lat, 99), 3),
                "direct_p50_ms": round(pct(direct, 50), 3),
                "added_p50_ms": round(pct(lat, 50) - pct(direct, 50), 3),
            }
            r = results[name]
            print(
                f"{name:30s} cpu/request {r['gateway_cpu_ms_per_request']:6.3f} ms   "
                f"p50 {r['latency_p50_ms']:6.2f} ms  p99 {r['latency_p99_ms']:6.2f} ms  "
                f"(direct p50 {r['direct_p50_ms']:.2f} ms)"
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        os.unlink(f.name)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        json.dumps({"machine": {"cpus": os.cpu_count()}, "results": results}, indent=2)
    )
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
