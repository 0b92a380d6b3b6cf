"""Interleaved A/B of two gateway checkouts: both run at once against one scripted upstream,
and short bursts take turns (A, B, B, A, ...), so both see the same machine. The matrix's c=1
cells vary by a fifth from run to run on 2 shared cores; a change of a few percent shows only
when the two sides alternate this tightly. Prints and writes the median CPU per request and
p50 and first-byte p50 per side and scenario.

    python scripts/bench/ab.py --a-root /tmp/old-checkout [--b-root .] [--rounds 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import load
import targets as t
from common import REPORTS, ROOT, cpu_seconds, free_port, process_tree, start, stop, wait_ready


def start_gateway(root: Path, port: int, up_port: int, workdir: Path) -> Any:
    path = workdir / f"serving-{port}.yaml"
    path.write_text(json.dumps(t.serving_config(up_port)))
    argv = [sys.executable, "-m", "serving", "gateway", "--config", str(path)]
    argv += ["--port", str(port), "--log-level", "warning"]
    env = {"BENCH_CLIENT_KEYS": t.KEY, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    proc = start(argv, env=env, log=workdir / f"serving-{port}.log", cwd=root)
    wait_ready(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-root", type=Path, required=True)
    parser.add_argument("--b-root", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--scenarios", default="openai:json:1,anthropic:json:1,openai:stream6:1")
    parser.add_argument("--out", type=Path, default=REPORTS / "ab.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    procs = []
    samples: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    try:
        up_port = free_port()
        procs.append(t.start_upstream(up_port, workdir / "upstream.log"))
        ports = {"a": free_port(), "b": free_port()}
        roots = {"a": args.a_root.resolve(), "b": args.b_root.resolve()}
        gateways = {s: start_gateway(roots[s], ports[s], up_port, workdir) for s in ports}
        procs += gateways.values()
        for spec in args.scenarios.split(","):
            dialect, mode, conc = spec.split(":")
            req = t.request(dialect, mode)
            per = samples.setdefault(spec, {"a": [], "b": []})
            order = itertools.cycle(["a", "b", "b", "a"])
            for side in ports:  # warm-up
                url = f"http://127.0.0.1:{ports[side]}{req.path}"
                load.drive(
                    url, req.body, req.headers, requests=300, concurrency=int(conc), seconds=5
                )
            for _ in range(args.rounds * 2):
                side = next(order)
                url = f"http://127.0.0.1:{ports[side]}{req.path}"
                pids = process_tree(gateways[side].pid)
                cpu0 = cpu_seconds(pids)
                run = load.drive(
                    url,
                    req.body,
                    req.headers,
                    requests=args.requests,
                    concurrency=int(conc),
                    seconds=30,
                )
                cpu = (cpu_seconds(pids) - cpu0) * 1000 / max(run.done + run.errors, 1)
                p50 = statistics.median(run.latencies) * 1000
                ttfb = statistics.median(run.ttfb) * 1000
                per[side].append((cpu, p50, ttfb))
            cpu, p50, ttfb = (
                {s: statistics.median(x[k] for x in per[s]) for s in per} for k in range(3)
            )
            print(
                f"{spec:24} CPU/req a {cpu['a']:.3f} ms b {cpu['b']:.3f} ms"
                f" | p50 a {p50['a']:.3f} ms b {p50['b']:.3f} ms"
                f" | first byte a {ttfb['a']:.3f} ms b {ttfb['b']:.3f} ms",
                flush=True,
            )
    finally:
        stop(procs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"a": str(args.a_root), "b": str(args.b_root), "samples": samples}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
