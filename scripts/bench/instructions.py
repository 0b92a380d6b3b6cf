"""Machine instructions the gateway executes per request, counted by valgrind's callgrind:
the gateway app is driven in-process by direct ASGI calls (no sockets, no load generator)
against the scripted upstream, once with a small and once with a large request count, and
the difference divided by the extra requests is the per-request cost. Start-up, imports and
warm-up cancel out.

Wall-clock and CPU-time medians of a c=1 cell wander by a fifth on 2 shared cores, so a 5%
change in the gateway's own work cannot be seen there; an instruction count repeats to a
fraction of a percent, run after run, on any machine. It counts work, not time (no cache
misses, no syscall latency), so it is how a change is judged, not a latency figure.

    python scripts/bench/instructions.py [--roots A,B] [--scenarios openai:json,...]

Needs valgrind (apt-get install valgrind). Writes reports/bench/instructions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import targets as t
from common import REPORTS, ROOT, free_port, stop

HERE = Path(__file__).resolve().parent
WARMUP = 20


async def _drive(config: Path, dialect: str, mode: str, count: int) -> None:
    """Send `count` requests (after WARMUP) straight into the app; every one must be a 200."""
    from serving.gateway.app import create_app
    from serving.gateway.commands import tune_gc
    from serving.gateway.settings import load_settings

    app = create_app(load_settings(config))
    req = t.request(dialect, mode)
    path, _, query = req.path.partition("?")
    headers = [(k.encode(), v.encode()) for k, v in req.headers.items()]
    headers += [(b"content-type", b"application/json"), (b"host", b"bench")]
    headers.append((b"content-length", str(len(req.body)).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    never = asyncio.Event()

    async def one() -> None:
        sent = False
        status = 0
        finished = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": req.body, "more_body": False}
            await never.wait()  # the client stays connected
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True

        await app(dict(scope), receive, send)
        if status != 200 or not finished:
            raise SystemExit(f"instructions: {dialect}:{mode} answered {status}")

    async with app.router.lifespan_context(app):
        tune_gc()
        for _ in range(WARMUP + count):
            await one()


def child(argv: list[str]) -> None:
    config, dialect, mode, count = argv
    # Under valgrind a request runs some fifty times slower, so the client watch's 50 ms
    # (disconnect.py) would start its listening task on some requests and not on others, as
    # the machine's load varies: counts then differ by several percent between runs.
    from serving.gateway import disconnect

    disconnect.ClientWatch.__init__.__defaults__ = (3600.0,)
    try:
        import uvloop  # the gateway runs on uvloop (uvicorn picks it when installed)
    except ImportError:
        asyncio.run(_drive(Path(config), dialect, mode, int(count)))
    else:
        uvloop.run(_drive(Path(config), dialect, mode, int(count)))


def _count(valgrind: str | None, root: Path, config: Path, spec: str, n: int, work: Path) -> int:
    out = work / f"callgrind-{os.getpid()}-{n}.out"
    dialect, mode = spec.split(":")
    argv = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"] if valgrind else []
    argv += [sys.executable, str(HERE / "instructions.py"), "--child"]
    argv += [str(config), dialect, mode, str(n)]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{HERE}", "HF_HUB_OFFLINE": "1"}
    env["BENCH_CLIENT_KEYS"] = t.KEY
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts, so start-up repeats exactly
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"instructions: {spec} failed:\n{done.stderr[-2000:]}")
    if valgrind is None:
        return 0
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    out.unlink()
    if match is None:
        raise SystemExit(f"instructions: no total in callgrind's output for {spec}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roots", default=str(ROOT), help="checkouts to compare, comma-separated")
    parser.add_argument("--scenarios", default="openai:json,anthropic:json,openai:stream6")
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=250)
    parser.add_argument("--out", type=Path, default=REPORTS / "instructions.json")
    parser.add_argument(
        "--check", action="store_true", help="drive each scenario once, without valgrind"
    )
    args = parser.parse_args()
    valgrind = shutil.which("valgrind")
    if args.check:
        valgrind = None
    elif valgrind is None:
        raise SystemExit("instructions: valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    up_port = free_port()
    upstream = t.start_upstream(up_port, work / "upstream.log")
    rows: list[dict[str, Any]] = []
    try:
        config = work / "serving.yaml"
        settings = t.serving_config(up_port)
        # No background health probes: they run per second of wall time, and under valgrind
        # that time (and so their share of the count) varies with the machine's load.
        settings["upstreams"][0]["health"] = {"enabled": False}
        config.write_text(json.dumps(settings))  # JSON is YAML
        for spec in args.scenarios.split(","):
            for root in (Path(r).resolve() for r in args.roots.split(",")):
                if args.check:
                    _count(None, root, config, spec, args.small, work)
                    print(f"{spec:18} ok  {root}", flush=True)
                    continue
                small = _count(valgrind, root, config, spec, args.small, work)
                large = _count(valgrind, root, config, spec, args.large, work)
                per = (large - small) / (args.large - args.small)
                rows.append({"scenario": spec, "root": str(root), "instructions": round(per)})
                print(f"{spec:18} {per:12,.0f} instructions/request  {root}", flush=True)
    finally:
        stop([upstream])
        shutil.rmtree(work, ignore_errors=True)
    if args.check:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"small": args.small, "large": args.large, "rows": rows}))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        raise SystemExit(main())
