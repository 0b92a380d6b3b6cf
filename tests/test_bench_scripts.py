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


def _paired_report(added_ms: list[float], ratios: list[float]) -> dict[str, object]:
    """paired.py's report shape: one JSON and one stream row, rounds whose serving side is
    direct's plus `added_ms[i]` (a whole stream's p50 half a millisecond more: only its first
    byte is the target's), and one flatness row per ratio."""

    def rounds(mode: str) -> list[dict[str, dict[str, float]]]:
        whole = 0.0 if mode == "json" else 0.5
        return [
            {
                "direct": {"p50_ms": 0.25, "ttfb_p50_ms": 0.2},
                "serving": {"p50_ms": 0.25 + x + whole, "ttfb_p50_ms": 0.2 + x},
            }
            for x in added_ms
        ]

    def spread(xs: list[float]) -> dict[str, float]:
        return {"median": sorted(xs)[len(xs) // 2], "min": min(xs), "max": max(xs)}

    added = [
        {
            "dialect": "gemini",
            "mode": mode,
            "rounds": rounds(mode),
            "added": {"p50_ms": spread(added_ms), "ttfb_p50_ms": spread(added_ms)},
        }
        for mode in ("json", "stream6")
    ]
    flat = [
        {
            "dialect": "gemini",
            "mode": "json",
            "high": 256,
            "rounds": [{"1": 0.4, "256": 0.4 * r}],
            "ratio": spread([r]),
        }
        for r in ratios
    ]
    return {"rounds": len(added_ms), "requests": 10, "started": "t0", "finished": "t1"} | {
        "load_average_start": [0.1],
        "load_average_end": [0.2],
        "added": added,
        "flat": flat,
    }


def test_report_renders_the_paired_targets_and_counts_what_holds(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- generated:targets -->\n<!-- /generated:targets -->\n"
        "<!-- generated:paired -->\n<!-- /generated:paired -->\n"
    )
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "paired.json").write_text(json.dumps(_paired_report([0.3, 0.7, 0.4], [1.1, 1.3])))
    _run("scripts/bench/report.py", "--reports", str(reports), "--doc", str(doc))
    text = doc.read_text()
    # medians 0.4 ms hold in both cells; one round of three (0.7 ms) does not
    assert "2 of 2 cells hold (holds); the largest is 0.40 [0.30, 0.70] ms" in text
    assert text.count("| 2 of 3 |") == 2  # JSON by its p50, the stream by its first byte
    assert "1 of 2 dialectxmode pairs hold; the highest median is +30% (gemini json)" in text
    (reports / "paired.json").write_text(json.dumps(_paired_report([0.6, 0.6, 0.4], [1.0])))
    _run("scripts/bench/report.py", "--reports", str(reports), "--doc", str(doc))
    assert "0 of 2 cells hold (does not hold)" in doc.read_text()


def test_instruction_count_driver_gets_an_answer_in_every_scenario() -> None:
    # --check runs the in-process ASGI driver without valgrind; it exits non-zero unless every
    # request is answered 200 through the scripted upstream
    scenarios = "openai:json,anthropic:json,gemini:stream6"
    out = _run("scripts/bench/instructions.py", "--check", "--small", "3", "--scenarios", scenarios)
    assert [line.split()[:2] for line in out.splitlines()] == [
        [s, "ok"] for s in scenarios.split(",")
    ]
