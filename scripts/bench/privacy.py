"""Privacy scan benchmark: detector time per MB on adversarial texts, and the worst case as a
budget in microseconds per KB.

Each input is built to hit one weakness of a naive detector: dense `@` (an email search per
`@`), dense digits (card candidates everywhere, each Luhn-checked), long separator runs,
IBAN-shaped runs (each mod-97-checked), `+` phone prefixes, `sk-` prefixes, and ordinary
prose. Times are for `PrivacyPolicy.scan` on the request's decoded text (what the gateway
runs, in a worker thread above `privacy.inline_scan_bytes`), best of `--repeat` runs. Prints a
table and writes reports/privacy-bench.json (and .md).

    python scripts/bench/privacy.py [--mb 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

from serving.gateway.policy.facts import build_facts
from serving.gateway.policy.privacy import PrivacyPolicy, ScanDoubt, iban_ok, luhn_ok
from serving.gateway.settings import Privacy


def _fill(unit: Callable[[random.Random], str], size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < size:
        piece = unit(rng)
        out.append(piece)
        n += len(piece)
    return "".join(out)[:size]


def _digits(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(k))


def _no_luhn(rng: random.Random, k: int) -> str:
    """k random digits that fail the Luhn check: the detector must check each, find none."""
    while True:
        digits = _digits(rng, k)
        if not luhn_ok(digits):
            return digits


def _chunks(s: str, k: int) -> list[str]:
    return [s[i : i + k] for i in range(0, len(s), k)]


def _bad_iban(rng: random.Random) -> str:
    while True:
        candidate = "DE" + _digits(rng, 20)
        if not iban_ok(candidate):
            return candidate


INPUTS: dict[str, Callable[[random.Random], str]] = {
    "at-dense (a@a@...)": lambda rng: "a@" * 512,
    "email-like, no TLD": lambda rng: "user.name@host-" + _digits(rng, 4) + " ",
    "digit-dense (13-digit runs)": lambda rng: _no_luhn(rng, 13) + "x",
    "card-shaped, bad Luhn": lambda rng: " ".join(_chunks(_no_luhn(rng, 16), 4)) + " x ",
    "one digit run": lambda rng: _digits(rng, 1024),
    "separator runs": lambda rng: "1" + " .-()" * 200,
    "iban-shaped, bad mod-97": lambda rng: _bad_iban(rng) + " ",
    "plus-dense (+1 ...)": lambda rng: "+1 " + _digits(rng, 20) + "1 ",
    "sk- dense": lambda rng: "sk-abc " * 64,
    "prose": lambda rng: (
        "The quick brown fox jumps over the lazy dog; order 42 ships on 2024-05-01. "
    ),
}


def measure(policy: PrivacyPolicy, text: str, repeat: int) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            found = policy.scan(text, started=time.monotonic())
            outcome = found or "clean"
        except ScanDoubt as doubt:
            outcome = f"doubt:{doubt.reason}"
        best = min(best, time.perf_counter() - started)
    return best, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=30.0, help="size of each adversarial text")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    # No timeout here: the point is the full cost of a scan.
    policy = PrivacyPolicy(Privacy(scan_timeout=3600.0))
    size = int(args.mb * 1024 * 1024)
    rows = []
    for name, unit in INPUTS.items():
        text = _fill(unit, size)
        # The gateway scans the facts' text: build it the same way, from a decoded body.
        facts_started = time.perf_counter()
        facts = build_facts({"model": "m", "messages": [{"role": "user", "content": text}]})
        facts_s = time.perf_counter() - facts_started
        seconds, outcome = measure(policy, facts.text, args.repeat)
        mb = facts.text_bytes / (1024 * 1024)
        rows.append(
            {
                "input": name,
                "mb": round(mb, 2),
                "scan_s": round(seconds, 4),
                "ms_per_mb": round(seconds * 1000 / mb, 2),
                "us_per_kb": round(seconds * 1e6 / (mb * 1024), 2),
                "facts_s": round(facts_s, 4),
                "outcome": outcome,
            }
        )
        print(
            f"{name:30} {mb:6.1f} MB  {seconds:7.3f} s  {rows[-1]['ms_per_mb']:8.2f} ms/MB"
            f"  {rows[-1]['us_per_kb']:7.2f} us/KB  facts {facts_s:.3f} s  {outcome}",
            flush=True,
        )
    worst = max(rows, key=lambda r: float(r["us_per_kb"]))
    print(f"worst case: {worst['us_per_kb']} us/KB ({worst['input']})")
    report = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "mb": args.mb,
        "rows": rows,
        "worst_us_per_kb": worst["us_per_kb"],
        "worst_input": worst["input"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "privacy-bench.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| input | MB | scan s | ms/MB | us/KB | outcome |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['input']} | {r['mb']} | {r['scan_s']} | {r['ms_per_mb']} | {r['us_per_kb']}"
        f" | {r['outcome']} |"
        for r in rows
    ]
    (out / "privacy-bench.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'privacy-bench.json'}")


if __name__ == "__main__":
    main()
