"""Where one request's time goes inside the proxy, phase by phase, at concurrency 1.

The profiles say which functions are hot; this says when, on a request's path, the time is
spent: before the upstream call (authentication, parsing, routing), writing it, waiting for the
upstream, after its answer arrives (checking and rendering it), to the first body write (a
client's time to first byte) and writing the rest. It runs the gateway and the floor proxy
with timestamps at the socket boundaries (uvicorn's `data_received`, the ASGI app's start, the
upstream client's request write and first read, the response's head, first and last body
write), drives each scenario at concurrency 1 and prints and writes the median of every
phase in µs, wall and (before the upstream call) CPU.

    python scripts/bench/phases.py [--requests 3000] [--scenarios openai:json,openai:stream6]

The timestamps patch a few functions of uvicorn and of the gateway's HTTP client, in the
measured process only (`--child`); every patch adds a clock read or two.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import targets as t
from common import REPORTS, ROOT, free_port, start, stop, wait_ready

PHASES = [
    ("in", "app", "uvicorn reads the request"),
    ("app", "up_write", "before the upstream call"),
    ("up_write", "up_written", "writing the upstream request"),
    ("up_written", "up_first", "waiting for the upstream"),
    ("up_first", "head", "upstream answer to response head"),
    ("head", "body1", "head to the first body write"),
    ("body1", "last", "writing the rest"),
]


def instrument(out: Path) -> None:
    """Patch the measured process: one dict of timestamps per request, dumped at exit."""
    from uvicorn.protocols.http import httptools_impl as h

    from serving.gateway.upstreams import http1

    ns, cpu = time.perf_counter_ns, time.thread_time_ns
    current: dict[str, int] = {}
    rows: list[dict[str, int]] = []

    def mark(name: str) -> None:
        current.setdefault(name, ns())

    received = h.HttpToolsProtocol.data_received

    def data_received(self: Any, data: bytes) -> None:
        if "last" in current:  # the previous request is done: keep it
            rows.append(dict(current))
            current.clear()
        mark("in")
        received(self, data)

    run_asgi = h.RequestResponseCycle.run_asgi

    async def timed_run(self: Any, app: Any) -> None:
        mark("app")
        current["app_cpu"] = cpu()
        await run_asgi(self, app)

    begin = http1.Connection.begin

    def timed_begin(self: Any, loop: Any, data: bytes, body: bytes | None) -> None:
        mark("up_write")
        current.setdefault("up_write_cpu", cpu())
        begin(self, loop, data, body)
        mark("up_written")

    upstream_received = http1.Connection.data_received

    def timed_upstream(self: Any, data: bytes) -> None:
        mark("up_first")
        upstream_received(self, data)

    send = h.RequestResponseCycle.send

    async def timed_send(self: Any, message: Any) -> None:
        if message["type"] == "http.response.start":
            mark("head")
        await send(self, message)
        if message["type"] == "http.response.body":
            mark("body1")  # the first byte a client reads: its time to first byte
            if not message.get("more_body", False):
                mark("last")

    h.HttpToolsProtocol.data_received = data_received  # type: ignore[method-assign]
    h.RequestResponseCycle.run_asgi = timed_run  # type: ignore[method-assign]
    h.RequestResponseCycle.send = timed_send  # type: ignore[method-assign]
    http1.Connection.begin = timed_begin  # type: ignore[method-assign]
    http1.Connection.data_received = timed_upstream  # type: ignore[method-assign]
    atexit.register(lambda: out.write_text(json.dumps(rows)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def child(argv: list[str]) -> None:
    instrument(Path(os.environ["PHASES_OUT"]))
    if argv[0] == "floor":
        import floor_proxy

        sys.argv = ["floor_proxy", *argv[1:]]
        floor_proxy.main()
        return
    from serving.cli import main

    sys.exit(main(argv[1:]))


def summarize(rows: list[dict[str, int]]) -> dict[str, float]:
    done = [r for r in rows if all(k in r for k in ("in", "app", "up_write", "head", "last"))]
    out: dict[str, float] = {"requests": len(done)}
    for a, b, _ in PHASES:
        have = [r[b] - r[a] for r in done if a in r and b in r]
        out[f"{a}>{b}"] = statistics.median(have) / 1e3 if have else float("nan")
    pre = [r["up_write_cpu"] - r["app_cpu"] for r in done if "up_write_cpu" in r]
    out["before_upstream_cpu"] = statistics.median(pre) / 1e3 if pre else float("nan")
    out["total"] = statistics.median(r["last"] - r["in"] for r in done) / 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--scenarios", default="openai:json,anthropic:json,openai:stream6")
    parser.add_argument("--out", type=Path, default=REPORTS / "phases.json")
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-phases-"))
    report: dict[str, Any] = {"scenarios": {}}
    me = [sys.executable, str(Path(__file__).resolve()), "--child"]
    env = {"BENCH_CLIENT_KEYS": t.KEY, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for spec in args.scenarios.split(","):
        dialect, mode = spec.split(":")
        procs = []
        try:
            up = free_port()
            procs.append(t.start_upstream(up, workdir / "upstream.log"))
            sides = {"serving": free_port()}
            if dialect == "openai":
                sides["floor"] = free_port()
            for side, port in sides.items():
                out = workdir / f"{spec.replace(':', '-')}-{side}.json"
                if side == "floor":
                    argv = ["floor", "--port", str(port), "--upstream", f"http://127.0.0.1:{up}"]
                else:
                    config = workdir / "serving.yaml"
                    config.write_text(json.dumps(t.serving_config(up)))
                    argv = ["serving", "gateway", "--config", str(config), "--port", str(port)]
                    argv += ["--log-level", "warning"]
                proc = start(
                    [*me, *argv], env={**env, "PHASES_OUT": str(out)}, log=out.with_suffix(".log")
                )
                procs.append(proc)
                wait_ready(f"http://127.0.0.1:{port}/health", proc=proc)
            req = t.request(dialect, mode)
            for side, port in sides.items():
                url = f"http://127.0.0.1:{port}{req.path}"
                headers = req.headers if side == "serving" else {}
                load.drive(url, req.body, headers, requests=200, concurrency=1, seconds=10)
                load.drive(
                    url, req.body, headers, requests=args.requests, concurrency=1, seconds=60
                )
        finally:
            for proc in procs[1:]:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(10)
            stop(procs)
        for side in sides:
            out = workdir / f"{spec.replace(':', '-')}-{side}.json"
            rows = json.loads(out.read_text())[200:]  # the warm-up's requests left out
            summary = summarize(rows)
            report["scenarios"].setdefault(spec, {})[side] = summary
            cells = " | ".join(f"{why} {summary[f'{a}>{b}']:.0f}" for a, b, why in PHASES)
            print(
                f"{spec:18} {side:8} {cells} | CPU before upstream "
                f"{summary['before_upstream_cpu']:.0f} | total {summary['total']:.0f} µs"
            )
    REPORTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
