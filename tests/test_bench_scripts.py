"""The benchmarks that call the gateway's own code in process, run with tiny counts.

mypy checks `serving` and `tests`, not `scripts/`, so a changed signature in the gateway can
break a benchmark silently until someone runs `make bench` (the privacy benchmark did, after
`PrivacyPolicy` lost its second argument). These runs keep them in step; they measure nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_privacy_benchmark_scans_every_input_and_writes_its_report(tmp_path: Path) -> None:
    _run("scripts/bench/privacy.py", "--mb", "0.01", "--repeat", "1", "--out", str(tmp_path))
    report = json.loads((tmp_path / "privacy-bench.json").read_text())
    assert report["rows"], report
    assert report["worst_us_per_kb"] > 0


def test_lifecycle_microbenchmark_reports_a_cost_per_request() -> None:
    out = _run("scripts/bench/micro_lifecycle.py", "--requests", "50")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["access_log"] == "off"
    assert result["lifecycle_us_per_request"] > 0


def test_instruction_count_driver_gets_an_answer_in_every_scenario() -> None:
    # --check runs the in-process ASGI driver without valgrind; it exits non-zero unless every
    # request is answered 200 through the scripted upstream
    scenarios = "openai:json,anthropic:json,gemini:stream6"
    out = _run("scripts/bench/instructions.py", "--check", "--small", "3", "--scenarios", scenarios)
    assert [line.split()[:2] for line in out.splitlines()] == [
        [s, "ok"] for s in scenarios.split(",")
    ]
