"""Failover timings: a route `m` with chain [primary, secondary], both scripted upstreams, and a
route `s` straight to the secondary (the healthy path). One client, requests back to back.

1. healthy: p50 of `m` (primary answers) and of `s` (their successes fill the breaker's window);
2. the primary dies: SIGKILL (connections refused) or SIGKILL and a black hole on its port (a
   listener whose accept queue is full, so connects hang until the connect timeout);
   timed from the kill: the first successful answer, then the requests, their latency and the
   time until the breaker opens;
3. breaker open: `m` and `s` interleaved, their p50s, and the attempts the gateway made at the
   dead primary meanwhile (from its /metrics; the target is zero).

Health probes are off, so the breaker alone takes the primary out. Writes
reports/bench/failover.json.

    python scripts/bench/failover.py [--requests 200] [--connect-timeout 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import targets as t
from common import REPORTS, free_port, load_average, pct, stop, write_json

HEALTH_OFF = {"enabled": False}


def config(primary: int, secondary: int, connect_timeout: float) -> dict[str, Any]:
    def upstream(name: str, port: int) -> dict[str, Any]:
        timeouts = {"connect": connect_timeout, "first_byte": 10, "total": 30}
        return {
            "name": name,
            "base_url": f"http://127.0.0.1:{port}/v1",
            "health": HEALTH_OFF,
            "timeouts": timeouts,
        }

    chain = [{"upstream": "primary", "model": "m"}, {"upstream": "secondary", "model": "m"}]
    return {
        "server": {"api_keys_env": "BENCH_CLIENT_KEYS"},
        "upstreams": [upstream("primary", primary), upstream("secondary", secondary)],
        "routes": [
            {"model": "m", "targets": chain},
            {"model": "s", "targets": [{"upstream": "secondary", "model": "m"}]},
        ],
        # a cooldown longer than the run: the breaker stays open while it is measured
        "policy": {"circuit": {"window": 30, "min_requests": 5, "cooldown": 300}},
    }


def black_hole(port: int) -> list[socket.socket]:
    """A listener on `port` that never accepts, its queue filled so that new SYNs are dropped:
    a connect there hangs, as to a host that went away."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(0)
    held = [server]
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            client.connect(("127.0.0.1", port))
        held.append(client)
    time.sleep(0.2)
    return held


def attempts_at(metrics: str, target: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("serving_upstream_attempts_total{") and f'target="{target}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def circuit_state(metrics: str, target: str) -> float | None:
    m = re.search(rf'serving_circuit_state{{target="{re.escape(target)}"}} (\S+)', metrics)
    return float(m.group(1)) if m else None


def timed(client: httpx.Client, model: str) -> tuple[float, int]:
    req = t.request("openai", "json")
    body = req.body.replace(b'"model": "m"', f'"model": "{model}"'.encode())
    t0 = time.perf_counter()
    try:
        status = client.post(req.path, content=body, headers=req.headers).status_code
    except httpx.HTTPError:
        status = 0
    return time.perf_counter() - t0, status


def scenario(kind: str, requests: int, connect_timeout: float, workdir: Path) -> dict[str, Any]:
    p_port, s_port, gw_port = free_port(), free_port(), free_port()
    primary = t.start_upstream(p_port, workdir / f"primary-{kind}.log")
    secondary = t.start_upstream(s_port, workdir / f"secondary-{kind}.log")
    procs = [primary, secondary]
    held: list[socket.socket] = []
    out: dict[str, Any] = {"kind": kind, "load_average_start": load_average()[0]}
    try:
        cfg = config(p_port, s_port, connect_timeout)
        gateway = t.start_serving(gw_port, p_port, workdir, workdir / f"gw-{kind}.log", cfg)
        procs.append(gateway)
        base = f"http://127.0.0.1:{gw_port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(50):  # warm-up: both paths' connections open
                timed(client, "m")
                timed(client, "s")
            healthy_m, healthy_s = [], []
            for _ in range(requests):
                healthy_m.append(timed(client, "m")[0])
                healthy_s.append(timed(client, "s")[0])
            out["healthy_p50_ms"] = {"chain": pct(healthy_m, 50), "secondary": pct(healthy_s, 50)}

            os.killpg(primary.pid, signal.SIGKILL)
            primary.wait(timeout=10)
            if kind == "black_hole":
                held = black_hole(p_port)
            killed = time.perf_counter()
            after: list[tuple[float, int]] = []
            first_ok = opened = None
            # until the breaker opens: the window still holds the healthy phase's successes
            while len(after) < 600 and time.perf_counter() - killed < 90:
                after.append(timed(client, "m"))
                if after[-1][1] == 200 and first_ok is None:
                    first_ok = time.perf_counter() - killed
                if circuit_state(client.get("/metrics").text, "primary/m") == 2:
                    opened = time.perf_counter() - killed
                    break
            dying = [s for s, _ in after]
            out["first_success_after_kill_ms"] = round(first_ok * 1000, 2) if first_ok else None
            out["first_request_after_kill_ms"] = round(dying[0] * 1000, 2)
            out["until_breaker_open"] = {
                "seconds": round(opened, 2) if opened else None,
                "requests": len(after),
                "errors": sum(status != 200 for _, status in after),
                "p50_ms": pct(dying, 50),
                "max_ms": pct(dying, 100),
            }
            metrics = client.get("/metrics").text
            out["breaker_state"] = circuit_state(metrics, "primary/m")
            before = attempts_at(metrics, "primary/m")
            open_m, open_s, failed = [], [], 0
            for _ in range(requests):
                seconds, status = timed(client, "m")
                open_m.append(seconds)
                failed += status != 200
                open_s.append(timed(client, "s")[0])
            after_attempts = attempts_at(client.get("/metrics").text, "primary/m")
            out["breaker_open"] = {
                "requests": requests,
                "errors": failed,
                "attempts_at_dead_target": after_attempts - before,
                "chain_p50_ms": pct(open_m, 50),
                "chain_p99_ms": pct(open_m, 99),
                "secondary_p50_ms": pct(open_s, 50),
                "secondary_p99_ms": pct(open_s, 99),
            }
            m50, s50 = pct(open_m, 50), pct(open_s, 50)
            if m50 is not None and s50 is not None:
                out["breaker_open"]["added_p50_ms"] = round(m50 - s50, 3)
    finally:
        for sock in held:
            sock.close()
        stop(procs)
    out["load_average_end"] = load_average()[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--connect-timeout", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=REPORTS / "failover.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    report: dict[str, Any] = {"connect_timeout_s": args.connect_timeout, "runs": []}
    try:
        for kind in ("refused", "black_hole"):
            run = scenario(kind, args.requests, args.connect_timeout, workdir)
            report["runs"].append(run)
            print(
                f"{kind:10s} first success after kill {run['first_success_after_kill_ms']} ms; "
                f"breaker open: {run['breaker_open']}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
