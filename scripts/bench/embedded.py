"""Benchmark the embedded engine per dtype: startup, memory, decode and prefill speed, and the
self-check verdict. Writes reports/embedded-engine.json and prints a table.

    python scripts/bench/embedded.py [--dtypes float32,bfloat16] [--prefill 1024,8000]

Numbers depend on the CPU and on what else runs on it: the report records the CPU model, its
flags of interest and the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from serving.engine.embedded import ensure_embedded_model
from serving.engine.launch import LaunchOptions, prepare_spec
from serving.engine.modelcheck import free_port, verified_reference
from serving.engine.process import ChildProcess
from serving.engine.selfcheck import ask_engine, read_cpu, with_dtype
from serving.engine.settings import EngineSettings
from serving.engine.supervisor import Startup, wait_healthy

DECODE_TOKENS = 64
VOCAB = 49152


def group_pss_mib(pgid: int) -> float:
    """Proportional set size of every process in the group (shared pages counted once)."""
    total_kib = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total_kib / 1024


def timed_completion(http: httpx.Client, prompt: list[int], max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    body = {"model": "smollm2", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    body["ignore_eos"] = True
    response = http.post("/completions", json=body)
    response.raise_for_status()
    return time.perf_counter() - started, int(response.json()["usage"]["completion_tokens"])


def bench_dtype(dtype: str, prefill_sizes: list[int], settings: EngineSettings) -> dict[str, Any]:
    spec, _, _ = prepare_spec(LaunchOptions(model="smollm2-135m", port=free_port()), settings)
    argv = with_dtype(spec.argv, dtype)
    reference = verified_reference(ensure_embedded_model(settings))
    row: dict[str, Any] = {"dtype": dtype}
    with tempfile.NamedTemporaryFile(prefix=f"bench-{dtype}-", suffix=".log") as log:
        engine = ChildProcess(argv, spec.env, stdout=log)
        started = time.monotonic()
        engine.start()
        try:
            outcome = wait_healthy(engine, spec.health_url, 900, threading.Event())
            if outcome is not Startup.HEALTHY:
                row["error"] = f"engine {outcome.value}"
                return row
            row["startup_s"] = round(time.monotonic() - started, 1)
            result = ask_engine(spec.base_url, "smollm2", reference)
            row["self_check"] = "passed" if result.ok else "FAILED"
            with httpx.Client(base_url=spec.base_url, timeout=900) as http:
                short = [random.randrange(VOCAB) for _ in range(16)]
                seconds, tokens = timed_completion(http, short, DECODE_TOKENS)
                row["decode_tokens_per_s"] = round(tokens / seconds, 1)
                for size in prefill_sizes:
                    prompt = [random.randrange(VOCAB) for _ in range(size)]  # no prefix-cache hit
                    seconds, _ = timed_completion(http, prompt, 1)
                    row[f"prefill_{size}_s"] = round(seconds, 1)
                    row[f"prefill_{size}_tokens_per_s"] = round(size / seconds, 1)
            row["memory_pss_mib"] = round(group_pss_mib(engine.pid))
        finally:
            engine.stop(30)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--prefill", default="1024,8000", help="prompt sizes in tokens")
    parser.add_argument("--out", type=Path, default=Path("reports/embedded-engine.json"))
    args = parser.parse_args()
    settings = EngineSettings.from_env()
    cpu = read_cpu()
    report: dict[str, Any] = {
        "cpu": cpu.describe(),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "runs": [],
    }
    sizes = [int(s) for s in args.prefill.split(",") if s]
    for dtype in args.dtypes.split(","):
        row = bench_dtype(dtype, sizes, settings)
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['cpu']}; load {report['load_average_at_start']:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
