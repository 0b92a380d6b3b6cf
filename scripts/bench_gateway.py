#!/usr/bin/env python3
"""Gateway overhead benchmark: CPU time the gateway process spends per request, and the latency
it adds, against a fake OpenAI-compatible upstream on 127.0.0.1.

Runs the fake upstream and the gateway as separate processes, drives a bounded number of
requests per scenario, reads the gateway's CPU time from /proc before and after, and writes
reports/bench_gateway.json. Target (docs/benchmarks.md): <= 2 ms CPU per request.

With --litellm PATH (a virtualenv made by scripts/setup-litellm-venv.sh, or its `litellm`
executable), the LiteLLM proxy then runs the same scenarios against the same fake upstream, with
the same request count, concurrency and warm-up, measured the same way, for a side-by-side table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
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


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> list[str]:
    # fields after "comm": [0] state, [1] ppid, ..., [11] utime, [12] stime
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> dict[int, int]:
    """CPU ticks (utime + stime) of `pid` and of every live descendant (a server's workers)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat(int(entry))
        except OSError:  # exited while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    tree: dict[int, int] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in ticks:
            tree[current] = ticks[current]
            todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    return sum(process_tree(pid).values()) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{url}: the server exited with {proc.returncode} before answering")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise BenchError(f"{url} did not come up in {timeout:.0f} s")


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
                    raise BenchError(f"{path} answered {resp.status_code}: {resp.text[:500]}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0]}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


# LiteLLM proxy settings for the side-by-side run: its cheapest fair configuration. No database
# and no master key (so no key lookup, no spend or error logs), no callbacks, no background health
# checks, one worker like the gateway, access and info logs off.
LITELLM_ENV = {
    "LITELLM_MODE": "PRODUCTION",  # do not load a .env from the working directory
    "LITELLM_LOG": "ERROR",  # its loggers and uvicorn's (access log included) at ERROR
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost-map download at start
    "LITELLM_TELEMETRY_DISABLED": "true",
}


def litellm_config(up_port: int) -> dict[str, Any]:
    return {
        "model_list": [
            {
                "model_name": "m",
                "litellm_params": {
                    "model": "openai/m",
                    "api_base": f"http://127.0.0.1:{up_port}/v1",
                    "api_key": "fake",
                },
            }
        ],
        "litellm_settings": {
            "set_verbose": False,
            "json_logs": False,
            "callbacks": [],
            "success_callback": [],
            "failure_callback": [],
            "turn_off_message_logging": True,
            "request_timeout": 30,
            # /v1/messages for an openai/ model goes to the upstream's /v1/responses unless this
            # is set; the fake upstream, like the gateway's route, speaks chat completions
            "use_chat_completions_url_for_anthropic_messages": True,
        },
        "general_settings": {
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "store_model_in_db": False,
            "background_health_checks": False,
            # no master key: no auth work per request, as the gateway's benchmark config has none
            "dangerously_permit_weak_or_unset_master_key": True,
        },
    }


def find_litellm(spec: str) -> tuple[Path, str]:
    """The `litellm` executable from a virtualenv folder, an executable path or a name on PATH,
    and the version installed beside it."""
    path = Path(spec)
    exe = path / "bin" / "litellm" if path.is_dir() else path
    if not exe.is_file():
        exe = Path(shutil.which(spec) or exe)
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise SystemExit(
            f"benchmark: no litellm executable at {spec} (bash scripts/setup-litellm-venv.sh)"
        )
    version = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        version = subprocess.run(
            [
                str(exe.parent / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    return exe.absolute(), version


def run_scenarios(
    label: str, pid: int, base: str, up: str, args: argparse.Namespace
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (path, body) in SCENARIOS.items():
        asyncio.run(drive(base, path, body, 200, args.concurrency))  # warm-up
        direct_path = "/v1/chat/completions"
        direct_body = {
            "stream": body.get("stream", False),
            **SCENARIOS["openai_passthrough"][1],
        }
        direct = asyncio.run(
            drive(up, direct_path, direct_body, args.requests // 4, args.concurrency)
        )
        before = cpu_seconds(pid)
        lat = asyncio.run(drive(base, path, body, args.requests, args.concurrency))
        cpu_ms = (cpu_seconds(pid) - before) * 1000 / args.requests
        results[name] = {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "gateway_cpu_ms_per_request": round(cpu_ms, 3),
            "latency_p50_ms": round(pct(lat, 50), 3),
            "latency_p99_ms": round(pct(lat, 99), 3),
            "direct_p50_ms": round(pct(direct, 50), 3),
            "added_p50_ms": round(pct(lat, 50) - pct(direct, 50), 3),
            "processes": len(process_tree(pid)),
        }
        r = results[name]
        print(
            f"{label}{name:30s} cpu/request {r['gateway_cpu_ms_per_request']:6.3f} ms   "
            f"p50 {r['latency_p50_ms']:6.2f} ms  p99 {r['latency_p99_ms']:6.2f} ms  "
            f"(direct p50 {r['direct_p50_ms']:.2f} ms)"
        )
    return results


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every process we started, each with its own process group (its workers, if any)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def side_by_side(ours: dict[str, Any], theirs: dict[str, Any], version: str) -> None:
    rows = [["scenario", "CPU/req gateway", f"CPU/req LiteLLM {version}", "ratio"]]
    rows[0] += ["p50 gateway", "p50 LiteLLM", "p99 gateway", "p99 LiteLLM"]
    for name, r in ours.items():
        t = theirs[name]
        cpu, lt_cpu = r["gateway_cpu_ms_per_request"], t["gateway_cpu_ms_per_request"]
        rows.append([name, f"{cpu:.3f} ms", f"{lt_cpu:.3f} ms", f"{lt_cpu / max(cpu, 1e-9):.1f}x"])
        for key in ("latency_p50_ms", "latency_p99_ms"):
            rows[-1] += [f"{r[key]:.2f} ms", f"{t[key]:.2f} ms"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (bounded)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--report", default=str(ROOT / "reports" / "bench_gateway.json"))
    parser.add_argument(
        "--litellm",
        metavar="PATH",
        help="also run the LiteLLM proxy side by side: its virtualenv (.venv-litellm, made by "
        "scripts/setup-litellm-venv.sh) or its litellm executable",
    )
    parser.add_argument("--fake-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_upstream:
        run_fake_upstream(args.fake_upstream)
        return 0
    litellm = find_litellm(args.litellm) if args.litellm else None

    up_port, gw_port = free_port(), free_port()
    config = {
        "upstreams": [{"name": "fake", "base_url": f"http://127.0.0.1:{up_port}/v1"}],
        "routes": [{"model": "m", "targets": [{"upstream": "fake", "model": "m"}]}],
    }
    procs: list[subprocess.Popen[bytes]] = []
    report_data: dict[str, Any] = {"machine": machine()}
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    (workdir / "gateway.yaml").write_text(json.dumps(config))  # JSON is YAML
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    litellm_log = report.with_name(report.stem + "_litellm.log")
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--fake-upstream", str(up_port)], start_new_session=True
            )
        )
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving",
                "gateway",
                "--config",
                str(workdir / "gateway.yaml"),
                "--port",
                str(gw_port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            start_new_session=True,
        )
        procs.append(gateway)
        up, gw = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
        try:
            wait_ready(f"{up}/health")
            wait_ready(f"{gw}/health")
            results = run_scenarios("", gateway.pid, gw, up, args)
        except BenchError as e:
            raise SystemExit(f"benchmark: {e}") from None
        report_data["results"] = results
        if litellm is not None:
            stop([gateway])  # LiteLLM runs alone beside the upstream, as the gateway did
            exe, version = litellm
            lt_port = free_port()
            lt_config = litellm_config(up_port)
            (workdir / "litellm.yaml").write_text(json.dumps(lt_config))
            print(f"\nLiteLLM {version} ({exe}), starting (its log: {litellm_log})")
            with litellm_log.open("wb") as log:
                proxy = subprocess.Popen(
                    [
                        str(exe),
                        "--config",
                        str(workdir / "litellm.yaml"),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(lt_port),
                        "--num_workers",
                        "1",
                    ],
                    cwd=workdir,
                    env={**os.environ, **LITELLM_ENV},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append(proxy)
            lt = f"http://127.0.0.1:{lt_port}"
            try:
                wait_ready(f"{lt}/health/liveliness", timeout=180, proc=proxy)
                lt_results = run_scenarios("litellm ", proxy.pid, lt, up, args)
            except BenchError as e:
                tail = litellm_log.read_text(errors="replace")[-3000:]
                raise SystemExit(
                    f"benchmark: LiteLLM: {e}\n--- its log, last lines:\n{tail}"
                ) from None
            report_data["litellm"] = {
                "version": version,
                "config": lt_config,
                "env": LITELLM_ENV,
                "command": "litellm --config CONFIG --host 127.0.0.1 --port PORT --num_workers 1",
                "log": str(litellm_log),
                "results": lt_results,
            }
            side_by_side(results, lt_results, version)
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    report.write_text(json.dumps(report_data, indent=2))
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
