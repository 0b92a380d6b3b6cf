"""The two targets that are differences of small readings, measured in paired rounds.

The matrix runs each cell once, one target after another. Two of the issue's targets compare two
such readings: the added p50 at c=1 (serving's 0.6-0.8 ms against direct's 0.25 ms) and CPU per
request at c=256 against c=1. On 2 shared cores a single c=1 reading moves by a fifth between
runs, so a one-shot difference says more about the minute it ran in than about the gateway.
Here every round measures both sides back to back, in alternating order (A B, then B A), and the
verdict is the median over rounds of the per-round difference (or ratio), with its spread.
Nine rounds, not five: with five, one cell's median moved by 0.1 ms between two runs of the
same code (round 9); the cells sit near the 0.5 ms line, so the estimate must be steadier.

1. Added latency: per client dialect and mode (JSON, 6-chunk stream), c=1, direct (the scripted
   upstream, its OpenAI request) and serving (the dialect's request) in each round; the p50 and
   the time-to-first-byte p50 of each, and serving minus direct.
2. Flatness: per dialect and mode (JSON, 6- and 50-chunk streams), serving's CPU per request at
   c=1 and at c=256 in each round, and their ratio.

No LiteLLM here (neither target is about it) and no floor: only the processes measured run.

    python scripts/bench/paired.py [--rounds 9] [--requests 1000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import targets as t
from common import (
    REPORTS,
    BenchError,
    cpu_seconds,
    load_average,
    machine,
    process_tree,
    stop,
    versions,
    write_json,
)


def burst(url: str, req: t.Request, n: int, c: int, pids: list[int] | None) -> dict[str, Any]:
    """One measured burst: p50, first-byte p50 (ms) and, for a proxy, its CPU ms per request."""
    cpu0 = cpu_seconds(pids) if pids else 0.0
    run = load.drive(url, req.body, req.headers, requests=n, concurrency=c, seconds=30)
    if run.errors or not run.done:
        raise BenchError(f"{url}: {run.errors} errors, first: {run.first_error}")
    out = {
        "p50_ms": statistics.median(run.latencies) * 1000,
        "ttfb_p50_ms": statistics.median(run.ttfb) * 1000,
    }
    if pids:
        out["cpu_ms"] = (cpu_seconds(pids) - cpu0) * 1000 / run.done
    return out


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def added(
    bases: dict[str, str], pids: list[int], dialect: str, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    sides = {"direct": t.request("openai", mode), "serving": t.request(dialect, mode)}
    for side, req in sides.items():  # warm-up, unmeasured
        load.drive(
            bases[side] + req.path, req.body, req.headers, requests=200, concurrency=1, seconds=10
        )
    rounds = []
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        got = {}
        for side in order:
            req = sides[side]
            got[side] = burst(
                bases[side] + req.path,
                req,
                args.requests,
                1,
                pids if side == "serving" else None,
            )
        rounds.append(got)
    diff = {
        key: spread([x["serving"][key] - x["direct"][key] for x in rounds])
        for key in ("p50_ms", "ttfb_p50_ms")
    }
    row = {"dialect": dialect, "mode": mode, "rounds": rounds, "added": diff}
    print(
        f"added  {dialect:9s} {mode:8s} p50 +{diff['p50_ms']['median']:.3f} ms "
        f"[{diff['p50_ms']['min']:.3f}, {diff['p50_ms']['max']:.3f}]  first byte "
        f"+{diff['ttfb_p50_ms']['median']:.3f} ms "
        f"[{diff['ttfb_p50_ms']['min']:.3f}, {diff['ttfb_p50_ms']['max']:.3f}]",
        flush=True,
    )
    return row


def flat(
    base: str, pids: list[int], dialect: str, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    req = t.request(dialect, mode)
    url = base + req.path
    levels = (1, args.high)
    for c in levels:  # warm-up: the pool opens its connections at the high level here
        load.drive(url, req.body, req.headers, requests=max(200, c), concurrency=c, seconds=10)
    rounds = []
    for r in range(args.rounds):
        order = levels if r % 2 == 0 else tuple(reversed(levels))
        n = {1: args.requests, args.high: max(args.requests, 4 * args.high)}
        rounds.append({str(c): burst(url, req, n[c], c, pids)["cpu_ms"] for c in order})
    ratio = spread([x[str(args.high)] / x["1"] for x in rounds])
    row = {"dialect": dialect, "mode": mode, "high": args.high, "rounds": rounds, "ratio": ratio}
    print(
        f"flat   {dialect:9s} {mode:8s} CPU/req c={args.high} over c=1: "
        f"{(ratio['median'] - 1) * 100:+.0f}% [{(ratio['min'] - 1) * 100:+.0f}%, "
        f"{(ratio['max'] - 1) * 100:+.0f}%]",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=1000, help="per burst")
    parser.add_argument("--high", type=int, default=256, help="the flatness target's level")
    parser.add_argument("--dialects", default=",".join(t.DIALECTS))
    parser.add_argument("--quick", action="store_true", help="2 rounds of 200 requests")
    parser.add_argument("--out", type=Path, default=REPORTS / "paired.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests = 2, 200
    dialects = args.dialects.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench-paired-"))
    report: dict[str, Any] = {
        "rounds": args.rounds,
        "requests": args.requests,
        "machine": machine(),
        "versions": versions("serving", "uvicorn", "httptools", "uvloop", "aiohttp"),
        "load_average_start": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "added": [],
        "flat": [],
    }
    procs = []
    try:
        up_port, gw_port, gateway = t.start_upstream_and_serving(workdir, procs)
        pids = process_tree(gateway.pid)
        bases = {"direct": f"http://127.0.0.1:{up_port}", "serving": f"http://127.0.0.1:{gw_port}"}
        for dialect in dialects:
            for mode in ("json", "stream6"):
                report["added"].append(added(bases, pids, dialect, mode, args))
                write_json(args.out, report)
        for dialect in dialects:
            for mode in t.MODES:
                report["flat"].append(flat(bases["serving"], pids, dialect, mode, args))
                write_json(args.out, report)
        report["load_average_end"] = load_average()
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    except BenchError as exc:
        raise SystemExit(f"benchmark: {exc}") from None
    finally:
        stop(procs)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
