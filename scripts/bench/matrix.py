"""The proxy matrix: direct (the scripted upstream itself), serving and LiteLLM in one run, per
client dialect (OpenAI pass-through, Anthropic and Gemini translated to the OpenAI upstream),
mode (JSON, 6- and 50-chunk streams) and concurrency. The targets take turns cell by cell, so
they see the same machine load. Per cell: throughput, p50/p90/p99 latency, time to first byte,
errors, the proxy process's CPU ms per request (from /proc, over the measured window only) and
its RSS. Writes reports/bench/matrix.json; `report.py` renders it into docs/benchmarks.md.

    python scripts/bench/matrix.py --quick          # CI-like: small counts, ~5 minutes
    python scripts/bench/matrix.py                  # full: the counts the docs quote
    python scripts/bench/matrix.py --no-litellm     # without the LiteLLM venv
    python scripts/bench/matrix.py --budget 900     # start no cell after 15 minutes
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import targets as t
from common import (
    REPORTS,
    ROOT,
    BenchError,
    cpu_seconds,
    free_port,
    load_average,
    machine,
    process_tree,
    rss_mib,
    stop,
    versions,
    write_json,
)

PROFILES = {
    # requests per cell (at least `per_worker` each for every worker), deadline per cell, warm-up
    "quick": {"requests": 200, "per_worker": 2, "seconds": 3.0, "warmup": 40},
    "full": {"requests": 1000, "per_worker": 6, "seconds": 12.0, "warmup": 100},
}


def cell(
    base: str,
    req: t.Request,
    concurrency: int,
    pids: list[int] | None,
    profile: dict[str, Any],
) -> dict[str, Any]:
    url = base + req.path
    warm = max(profile["warmup"], concurrency)
    load.drive(url, req.body, req.headers, requests=warm, concurrency=concurrency, seconds=3)
    n = max(profile["requests"], profile["per_worker"] * concurrency)
    cpu0 = cpu_seconds(pids) if pids else 0.0
    run = load.drive(
        url, req.body, req.headers, requests=n, concurrency=concurrency, seconds=profile["seconds"]
    )
    out = load.summary(run)
    if pids:
        attempts = max(1, run.done + run.errors)
        out["cpu_ms_per_request"] = round((cpu_seconds(pids) - cpu0) * 1000 / attempts, 3)
        out["rss_mib"] = rss_mib(pids)
    out["load_average"] = load_average()[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI-like)")
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--dialects", default=",".join(t.DIALECTS))
    parser.add_argument("--modes", default=",".join(t.MODES))
    parser.add_argument("--litellm-venv", type=Path, default=ROOT / ".venv-litellm")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--out", type=Path, default=REPORTS / "matrix.json")
    parser.add_argument(
        "--budget", type=float, help="seconds: start no cell after this; the rest are listed"
    )
    args = parser.parse_args()
    # a SIGTERM (a CI timeout) still stops the servers and keeps the cells measured so far
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    deadline = time.monotonic() + args.budget if args.budget else float("inf")
    mode_name = "quick" if args.quick else "full"
    profile = PROFILES[mode_name]
    levels = [int(c) for c in args.concurrency.split(",")]
    dialects, modes = args.dialects.split(","), args.modes.split(",")
    litellm = None if args.no_litellm else t.find_litellm(args.litellm_venv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    logs = args.out.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "mode": mode_name,
        "profile": profile,
        "machine": machine(),
        "versions": versions(
            "serving", "uvicorn", "httptools", "uvloop", "starlette", "fastapi", "aiohttp"
        ),
        "load_average_start": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cells": [],
    }
    procs = []
    try:
        up_port, gw_port, lt_port = free_port(), free_port(), free_port()
        procs.append(t.start_upstream(up_port, logs / "upstream.log"))
        floor_port = free_port()
        floor = t.start_floor(floor_port, up_port, logs / "floor.log")
        procs.append(floor)
        gateway = t.start_serving(gw_port, up_port, workdir, logs / "serving.log")
        procs.append(gateway)
        bases = {
            "direct": f"http://127.0.0.1:{up_port}",
            "floor": f"http://127.0.0.1:{floor_port}",
            "serving": f"http://127.0.0.1:{gw_port}",
        }
        pids: dict[str, list[int] | None] = {
            "direct": None,
            "floor": process_tree(floor.pid),
            "serving": process_tree(gateway.pid),
        }
        if litellm is not None:
            exe, report["versions"]["litellm"] = litellm
            proxy = t.start_litellm(exe, lt_port, up_port, workdir, logs / "litellm.log")
            procs.append(proxy)
            bases["litellm"] = f"http://127.0.0.1:{lt_port}"
            pids["litellm"] = process_tree(proxy.pid)
        report["idle_rss_mib"] = {k: rss_mib(v) for k, v in pids.items() if v}
        report["skipped"] = []
        # low concurrency first for every mode, so a budget cuts the costliest cells
        for c in levels:
            for mode in modes:
                if time.monotonic() > deadline:
                    report["skipped"].append({"mode": mode, "concurrency": c})
                    continue
                direct = cell(bases["direct"], t.request("openai", mode), c, None, profile)
                report["cells"].append(
                    {
                        "target": "direct",
                        "dialect": "openai",
                        "mode": mode,
                        "concurrency": c,
                        **direct,
                    }
                )
                _print("direct", "openai", mode, c, direct)
                for dialect in dialects:
                    for target in ("floor", "serving", "litellm"):
                        # the floor only passes through: it runs with the OpenAI dialect
                        if target not in bases or (target == "floor" and dialect != "openai"):
                            continue
                        req = t.request(dialect, mode)
                        row = cell(bases[target], req, c, pids[target], profile)
                        for key in ("p50_ms", "ttfb_p50_ms"):
                            if row[key] is not None and direct[key] is not None:
                                row["added_" + key] = round(row[key] - direct[key], 3)
                        report["cells"].append(
                            {
                                "target": target,
                                "dialect": dialect,
                                "mode": mode,
                                "concurrency": c,
                                **row,
                            }
                        )
                        _print(target, dialect, mode, c, row)
                        write_json(args.out, report)  # so far, should the run be cut short
        report["load_average_end"] = load_average()
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    except BenchError as exc:
        raise SystemExit(f"benchmark: {exc}") from None
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


def _print(target: str, dialect: str, mode: str, c: int, row: dict[str, Any]) -> None:
    cpu = row.get("cpu_ms_per_request")
    print(
        f"{target:8s} {dialect:9s} {mode:8s} c={c:<4d} n={row['requests']:<5d} "
        f"err={row['errors']:<3d} rps={row['throughput_rps']!s:>7s} "
        f"p50={row['p50_ms']!s:>8s} p99={row['p99_ms']!s:>8s} ttfb={row['ttfb_p50_ms']!s:>8s} "
        f"cpu/req={cpu!s:>6s} ms load={row['load_average']}",
        flush=True,
    )
    if row["errors"]:
        print(f"    first error: {row['first_error']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
