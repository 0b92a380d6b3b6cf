"""Render the benchmark reports (reports/bench/*.json) into docs/benchmarks.md and its plots.

The document's prose is written by hand; this script only replaces what lies between
`<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers with tables built from the
JSON reports, and draws docs/bench/*.png with matplotlib. A report that is missing leaves its
block saying so. Another benchmark adds its block by adding a renderer to BLOCKS.

    python scripts/bench/report.py [--reports reports/bench] [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import REPORTS, ROOT

Report = dict[str, Any]
DIALECT_NAMES = {
    "openai": "OpenAI → OpenAI (pass-through)",
    "anthropic": "Anthropic → OpenAI",
    "gemini": "Gemini → OpenAI",
}


def _load(folder: Path, name: str) -> Report | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return f"{value:.{digits}f}"
    return str(value)


def _cells(matrix: Report) -> dict[tuple[str, str, str, int], Report]:
    return {(c["target"], c["dialect"], c["mode"], c["concurrency"]): c for c in matrix["cells"]}


def block_machine(reports: dict[str, Report | None]) -> str:
    m = reports["matrix"]
    if m is None:
        return "_No matrix report: run `make bench`._"
    mach = m["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    prof = m["profile"]
    return "\n".join(
        [
            f"- Run: {m['started']} → {m.get('finished', '?')}, mode **{m['mode']}** "
            f"({prof['requests']} requests per cell, at least {prof['per_worker']} per worker, "
            f"at most {prof['seconds']:g} s per cell, {prof['warmup']} warm-up requests)",
            f"- Machine: {mach.get('Model name', '?')}, {mach.get('CPU(s)', mach['cpus'])} CPUs, "
            f"{mach.get('memory_gib', '?')} GiB, L3 {mach.get('L3 cache', '?')}, "
            f"Python {mach['python']}; shared with other work while it ran",
            f"- Load average (1/5/15 min) at start {m['load_average_start']}, at end "
            f"{m.get('load_average_end')}; each cell's 1-minute load is in the JSON report",
            f"- Versions: {vers}",
            f"- Idle RSS: {', '.join(f'{k} {v} MiB' for k, v in m['idle_rss_mib'].items())}",
        ]
        + (
            [
                "- **Not run** (the run's time budget ran out): "
                + ", ".join(f"{x['mode']} c={x['concurrency']}" for x in m["skipped"])
            ]
            if m.get("skipped")
            else []
        )
    )


def block_matrix(reports: dict[str, Report | None]) -> str:
    m = reports["matrix"]
    if m is None:
        return "_No matrix report._"
    cells = _cells(m)
    head = (
        "| dialect | mode | c | direct p50 / ttfb | serving req/s | serving p50 / p90 / p99 |"
        " serving ttfb | serving CPU/req | serving RSS | LiteLLM req/s | LiteLLM p50 / p90 / p99 |"
        " LiteLLM ttfb | LiteLLM CPU/req | LiteLLM RSS | errors s / L | CPU ratio |"
    )
    rows = [head, "|" + "---|" * 16]
    for dialect, mode, c in _keys(m):
        d = cells.get(("direct", "openai", mode, c), {})
        s = cells.get(("serving", dialect, mode, c), {})
        lt = cells.get(("litellm", dialect, mode, c), {})
        ratio = _ratio(s, lt)
        rows.append(
            f"| {dialect} | {mode} | {c} | {_f(d.get('p50_ms'))} / {_f(d.get('ttfb_p50_ms'))} "
            f"| {_f(s.get('throughput_rps'), 0)} | {_lat(s)} | {_f(s.get('ttfb_p50_ms'))} "
            f"| {_f(s.get('cpu_ms_per_request'))} ms | {_f(s.get('rss_mib'), 0)} MiB "
            f"| {_f(lt.get('throughput_rps'), 0)} | {_lat(lt)} | {_f(lt.get('ttfb_p50_ms'))} "
            f"| {_f(lt.get('cpu_ms_per_request'))} ms | {_f(lt.get('rss_mib'), 0)} MiB "
            f"| {s.get('errors', '—')} / {lt.get('errors', '—')} | {_f(ratio, 1)}x |"
        )
    return "\n".join(rows) + "\n\nLatencies in ms; CPU is the proxy process's CPU ms per request."


def block_floor(reports: dict[str, Report | None]) -> str:
    """serving (OpenAI pass-through) beside the no-logic proxy on the same stack."""
    m = reports["matrix"]
    if m is None:
        return "_No matrix report._"
    cells = _cells(m)
    rows = [
        "| mode | c | direct p50 | floor p50 / ttfb | floor CPU/req | serving p50 / ttfb |"
        " serving CPU/req | serving - floor: p50 / CPU |",
        "|" + "---|" * 8,
    ]
    for dialect, mode, c in _keys(m):
        fl = cells.get(("floor", dialect, mode, c))
        if fl is None:
            continue
        d = cells.get(("direct", "openai", mode, c), {})
        s = cells.get(("serving", dialect, mode, c), {})
        gap = [_diff(s, fl, k) for k in ("p50_ms", "cpu_ms_per_request")]
        rows.append(
            f"| {mode} | {c} | {_f(d.get('p50_ms'))} | {_f(fl.get('p50_ms'))} / "
            f"{_f(fl.get('ttfb_p50_ms'))} | {_f(fl.get('cpu_ms_per_request'))} ms "
            f"| {_f(s.get('p50_ms'))} / {_f(s.get('ttfb_p50_ms'))} "
            f"| {_f(s.get('cpu_ms_per_request'))} ms | {_f(gap[0])} / {_f(gap[1])} ms |"
        )
    if len(rows) == 2:
        return "_No floor cells in the matrix report._"
    return "\n".join(rows) + "\n\nLatencies in ms; `floor` is scripts/bench/floor_proxy.py."


def _diff(a: Report, b: Report, key: str) -> float | None:
    x, y = a.get(key), b.get(key)
    return x - y if x is not None and y is not None else None


def _keys(m: Report) -> list[tuple[str, str, int]]:
    seen: dict[tuple[str, str, int], None] = {}
    for c in m["cells"]:
        if c["target"] != "direct":
            seen[(c["dialect"], c["mode"], c["concurrency"])] = None
    return list(seen)


def _lat(row: Report) -> str:
    return " / ".join(_f(row.get(k), 1) for k in ("p50_ms", "p90_ms", "p99_ms"))


def _ratio(s: Report, lt: Report) -> float | None:
    a, b = s.get("cpu_ms_per_request"), lt.get("cpu_ms_per_request")
    return b / a if a and b else None


def block_targets(reports: dict[str, Report | None]) -> str:
    m = reports["matrix"]
    if m is None:
        return "\n".join(["_No matrix report._", *_paired_verdicts(reports["paired"])])
    cells = _cells(m)
    keys = _keys(m)
    out = []
    ratios = [
        (r, k)
        for k in keys
        if (r := _ratio(cells.get(("serving", *k), {}), cells.get(("litellm", *k), {})))
    ]
    if ratios:
        held = sum(r >= 10 for r, _ in ratios)
        worst = min(ratios)
        out.append(
            f"- **CPU ≤ 1/10 of LiteLLM's in every cell**: {held} of {len(ratios)} cells hold; "
            f"the worst is {worst[0]:.1f}x ({' '.join(map(str, worst[1]))}), the best "
            f"{max(ratios)[0]:.1f}x. {'Holds.' if held == len(ratios) else 'Does not hold.'}"
        )
    levels = sorted({k[2] for k in keys})
    lo, hi = levels[0], levels[-1]
    flat = []
    for dialect, mode in dict.fromkeys((k[0], k[1]) for k in keys):
        a = cells.get(("serving", dialect, mode, lo), {}).get("cpu_ms_per_request")
        b = cells.get(("serving", dialect, mode, hi), {}).get("cpu_ms_per_request")
        if a and b:
            flat.append((b / a - 1) * 100)
            out.append(
                f"  - serving {dialect} {mode}: CPU/req {a:.2f} ms at c={lo}, {b:.2f} ms at "
                f"c={hi} ({(b / a - 1) * 100:+.0f}%)"
            )
    if flat:
        # The target is about cost growing with load; a fall (batched reads and writes at high
        # concurrency) is reported apart, since a strict ±20% reading would count it too.
        held = sum(x <= 20 for x in flat)
        strict = sum(abs(x) <= 20 for x in flat)
        out.insert(
            len(out) - len(flat),
            f"- **CPU/req at c={hi} at most 20% above c={lo}**: {held} of {len(flat)} "
            f"dialectxmode pairs hold ({'holds' if held == len(flat) else 'does not hold'}); "
            f"within ±20% (a fall counted too): {strict} of {len(flat)}:",
        )
    fl, flt = (cells.get(("floor", "openai", mode, lo), {}) for mode in ("json", "stream6"))
    if fl:
        out.append(
            f"- Added p50 at c={lo} of the floor (no-logic proxy on uvicorn + serving's HTTP "
            f"client): JSON "
            f"{_f(fl.get('added_p50_ms'))} ms, stream time to first byte "
            f"{_f(flt.get('added_ttfb_p50_ms'))} ms"
        )
    for dialect in dict.fromkeys(k[0] for k in keys):
        s = cells.get(("serving", dialect, "json", lo), {})
        st = cells.get(("serving", dialect, "stream6", lo), {})
        out.append(
            f"- **Added p50 at c={lo} ≤ 0.5 ms** ({dialect}): JSON {_f(s.get('added_p50_ms'))} "
            f"ms, stream time to first byte {_f(st.get('added_ttfb_p50_ms'))} ms"
        )
    out += _paired_verdicts(reports["paired"])
    e = reports["engine"]
    if e is not None:
        for c, level in e["levels"].items():
            r = level["gateway_vs_direct_aggregate"]
            out.append(
                f"- **Engine tokens/s within 2%** (c={c}): through the gateway "
                f"{(r - 1) * 100:+.1f}% vs direct ({'holds' if r >= 0.98 else 'does not hold'})"
            )
    f = reports["failover"]
    if f is not None:
        for run in f["runs"]:
            b = run["breaker_open"]
            out.append(
                f"- **Breaker open** ({run['kind']}): {b['attempts_at_dead_target']:.0f} attempts "
                f"at the dead target in {b['requests']} requests; p50 {_f(b['chain_p50_ms'])} ms "
                f"vs healthy path {_f(b['secondary_p50_ms'])} ms "
                f"({_f(b.get('added_p50_ms'))} ms added)"
            )
    return "\n".join(out)


def _span(x: Report, digits: int = 2) -> str:
    return f"{_f(x['median'], digits)} [{_f(x['min'], digits)}, {_f(x['max'], digits)}]"


def block_paired(reports: dict[str, Report | None]) -> str:
    """The added-latency and flatness targets from paired, alternating rounds (paired.py)."""
    p = reports["paired"]
    if p is None:
        return "_No paired report: run `make bench-paired`._"
    head = (
        f"Run {p['started']} → {p.get('finished', '?')}, {p['rounds']} rounds of "
        f"{p['requests']} requests per side and scenario; load average "
        f"{p['load_average_start']} → {p.get('load_average_end')}. Medians over rounds, "
        "[lowest, highest] round.\n"
    )
    rows = [
        "| client dialect | mode | direct p50 | serving p50 | added p50 | added first byte "
        "| rounds within 0.5 ms (JSON p50, stream first byte) |",
        "|" + "---|" * 7,
    ]
    for row in p["added"]:
        rounds = row["rounds"]
        key = "p50_ms" if row["mode"] == "json" else "ttfb_p50_ms"  # the target's reading
        ok = sum(r["serving"][key] - r["direct"][key] <= 0.5 for r in rounds)
        rows.append(
            f"| {DIALECT_NAMES[row['dialect']]} | {row['mode']} "
            f"| {_f(_median([r['direct']['p50_ms'] for r in rounds]))} "
            f"| {_f(_median([r['serving']['p50_ms'] for r in rounds]))} "
            f"| {_span(row['added']['p50_ms'])} | {_span(row['added']['ttfb_p50_ms'])} "
            f"| {ok} of {len(rounds)} |"
        )
    flat = [
        "| client dialect | mode | serving CPU/req c=1 | c={high} | c={high} over c=1 |",
        "|" + "---|" * 5,
    ]
    for row in p["flat"]:
        high = str(row["high"])
        flat[0] = flat[0].format(high=high)
        ratio = {k: (v - 1) * 100 for k, v in row["ratio"].items()}
        flat.append(
            f"| {DIALECT_NAMES[row['dialect']]} | {row['mode']} "
            f"| {_f(_median([r['1'] for r in row['rounds']]), 3)} ms "
            f"| {_f(_median([r[high] for r in row['rounds']]), 3)} ms "
            f"| {ratio['median']:+.0f}% [{ratio['min']:+.0f}%, {ratio['max']:+.0f}%] |"
        )
    return head + "\n" + "\n".join(rows) + "\n\n" + "\n".join(flat)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _paired_verdicts(p: Report | None) -> list[str]:
    """The two difference targets, from paired rounds (the matrix's one-shot cells above)."""
    if p is None:
        return []
    out = []
    # the target's readings: JSON's p50, a stream's time to first byte
    cells = [
        (row["added"]["p50_ms" if row["mode"] == "json" else "ttfb_p50_ms"], row)
        for row in p["added"]
    ]
    held = sum(x["median"] <= 0.5 for x, _ in cells)
    worst = max(cells, key=lambda cell: cell[0]["median"])
    out.append(
        f"- **Added p50 at c=1 ≤ 0.5 ms, paired rounds** (paired.py: JSON p50, stream first "
        f"byte; medians of {p['rounds']} rounds): {held} of {len(cells)} cells hold "
        f"({'holds' if held == len(cells) else 'does not hold'}); the largest is "
        f"{_span(worst[0])} ms ({worst[1]['dialect']} {worst[1]['mode']})"
    )
    if p["flat"]:
        top = max((row["ratio"]["median"], row["dialect"], row["mode"]) for row in p["flat"])
        high = p["flat"][0]["high"]
        ok = sum(row["ratio"]["median"] <= 1.2 for row in p["flat"])
        out.append(
            f"- **CPU/req at c={high} at most 20% above c=1, paired rounds**: {ok} of "
            f"{len(p['flat'])} dialectxmode pairs hold; the highest median is "
            f"{(top[0] - 1) * 100:+.0f}% ({top[1]} {top[2]})"
        )
    return out


def block_failover(reports: dict[str, Report | None]) -> str:
    f = reports["failover"]
    if f is None:
        return "_No failover report: run `make bench`._"
    rows = [
        "| primary dies by | healthy p50 chain / secondary | first request after kill "
        "| first success after kill | until breaker open | breaker open: attempts at dead "
        "| breaker open p50 / p99 | healthy path p50 / p99 | load |",
        "|" + "---|" * 9,
    ]
    for r in f["runs"]:
        u, b, h = r["until_breaker_open"], r["breaker_open"], r["healthy_p50_ms"]
        rows.append(
            f"| {r['kind'].replace('_', ' ')} | {_f(h['chain'])} / {_f(h['secondary'])} ms "
            f"| {_f(r['first_request_after_kill_ms'])} ms "
            f"| {_f(r['first_success_after_kill_ms'])} ms "
            f"| {_f(u['seconds'])} s, {u['requests']} requests (p50 {_f(u['p50_ms'])} ms, "
            f"max {_f(u['max_ms'])} ms, {u['errors']} errors) "
            f"| {b['attempts_at_dead_target']:.0f} of {b['requests']} requests "
            f"| {_f(b['chain_p50_ms'])} / {_f(b['chain_p99_ms'])} ms "
            f"| {_f(b['secondary_p50_ms'])} / {_f(b['secondary_p99_ms'])} ms "
            f"| {r['load_average_start']}-{r['load_average_end']} |"
        )
    return "\n".join(rows) + f"\n\nConnect timeout of the primary: {f['connect_timeout_s']} s."


def block_engine(reports: dict[str, Report | None]) -> str:
    e = reports["engine"]
    if e is None:
        return "_No engine report: run `make bench-engine`._"
    rows = [
        "| c | side | requests | TTFT p50 | tokens/s per stream | tokens/s aggregate |",
        "|---|---|---|---|---|---|",
    ]
    for c, level in e["levels"].items():
        for side in ("direct", "gateway"):
            s = level[side]
            rows.append(
                f"| {c} | {side} | {s['requests']} | {_f(s['ttft_p50_ms'], 1)} ms "
                f"| {_f(s['stream_tokens_per_s'], 1)} | {_f(s['aggregate_tokens_per_s'], 1)} |"
            )
    return "\n".join(rows) + (
        f"\n\n{e['tokens_per_request']} tokens per request (ignore_eos), streamed; load average "
        f"{e['load_average_start']} → {e['load_average_end']}; {e['machine'].get('Model name')}."
    )


def block_isolation(reports: dict[str, Report | None]) -> str:
    parts = []
    h = reports["iso-http-clients"]
    if h is not None:
        names = ("httpx", "httpx-keepalive", "aiohttp", "http1", "raw")
        rows = [
            "| mode | c | httpx (round 1's pool) | httpx, all kept alive | aiohttp "
            "| serving's http1 | bare pooled |",
            "|---|---|---|---|---|---|---|",
        ]
        by: dict[tuple[str, int], dict[str, Report]] = {}
        for c in h["cells"]:
            by.setdefault((c["mode"], c["concurrency"]), {})[c["client"]] = c
        for (mode, c), row in by.items():
            rows.append(
                f"| {mode} | {c} | "
                + " | ".join(
                    f"{_f(row[n]['cpu_ms_per_request'], 3)} ms ({row[n]['rps']} req/s)"
                    if n in row
                    else "—"
                    for n in names
                )
                + " |"
            )
        vers = ", ".join(f"{k} {v}" for k, v in h["versions"].items())
        parts.append(
            "**HTTP clients** (client process CPU per upstream request; "
            f"{h['requests']} requests per cell; {vers}; load {h['load_average_start']} → "
            f"{h['load_average_end']}):\n\n" + "\n".join(rows)
        )
    s = reports["iso-servers"]
    if s is not None:
        rows = ["| server | app | c | CPU/req | p50 |", "|---|---|---|---|---|"]
        for c in s["cells"]:
            rows.append(
                f"| {c['server']} | {c['app']} | {c['concurrency']} "
                f"| {_f(c['cpu_ms_per_request'], 3)} ms | {_f(c['p50_ms'])} ms |"
            )
        vers = ", ".join(f"{k} {v}" for k, v in s["versions"].items())
        parts.append(
            f"**Servers and app layers** (server process CPU per request; {vers}; load "
            f"{s['load_average_start']} → {s['load_average_end']}):\n\n" + "\n".join(rows)
        )
    j = reports["iso-json"]
    if j is not None:
        rows = [
            "| case | bytes | json.loads | orjson.loads | json.dumps | orjson.dumps |",
            "|---|---|---|---|---|---|",
        ]
        for r in j["rows"]:
            rows.append(
                f"| {r['case']} | {r['bytes']} | {r['stdlib_loads_us']} µs "
                f"| {r['orjson_loads_us']} µs | {r['stdlib_dumps_us']} µs "
                f"| {r['orjson_dumps_us']} µs |"
            )
        parts.append(f"**JSON** (orjson {j['versions']['orjson']}):\n\n" + "\n".join(rows))
    return "\n\n".join(parts) or "_No isolation reports: run `make bench-isolation`._"


def plots(matrix: Report, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _cells(matrix)
    modes = list(dict.fromkeys(c["mode"] for c in matrix["cells"]))
    levels = sorted({c["concurrency"] for c in matrix["cells"]})
    dialects = list(dict.fromkeys(c["dialect"] for c in matrix["cells"] if c["target"] != "direct"))
    styles = {"serving": "-", "litellm": "--", "direct": ":"}
    colors = {"openai": "tab:blue", "anthropic": "tab:orange", "gemini": "tab:green"}
    folder.mkdir(parents=True, exist_ok=True)
    for name, key, ylabel in (
        ("cpu-per-request", "cpu_ms_per_request", "proxy CPU ms per request"),
        ("added-latency", "added_p50_ms", "p50 latency added over direct, ms"),
    ):
        fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
        for ax, mode in zip(axes[0], modes, strict=True):
            for target in ("serving", "litellm"):
                for dialect in dialects:
                    ys = [cells.get((target, dialect, mode, c), {}).get(key) for c in levels]
                    pts = [(x, y) for x, y in zip(levels, ys, strict=True) if y is not None]
                    if pts:
                        ax.plot(
                            *zip(*pts, strict=True),
                            styles[target],
                            marker="o",
                            color=colors.get(dialect),
                            label=f"{target} {dialect}",
                        )
            if key == "added_p50_ms":
                ys = [cells.get(("direct", "openai", mode, c), {}).get("p50_ms") for c in levels]
                pts = [(x, y) for x, y in zip(levels, ys, strict=True) if y is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), ":", marker="s", color="black",
                            label="direct (its own p50)")  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(levels, [str(c) for c in levels])
            ax.set_xlabel("concurrency")
            ax.set_ylabel(ylabel)
            ax.set_title(mode)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{ylabel} vs concurrency (load {matrix['load_average_start'][0]} at start)")
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", dpi=90)
        plt.close(fig)


BLOCKS: dict[str, Callable[[dict[str, Report | None]], str]] = {
    "machine": block_machine,
    "targets": block_targets,
    "matrix": block_matrix,
    "floor": block_floor,
    "paired": block_paired,
    "failover": block_failover,
    "engine": block_engine,
    "isolation": block_isolation,
}
SOURCES = ("matrix", "paired", "failover", "engine", "iso-http-clients", "iso-servers", "iso-json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=REPORTS)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args()
    reports = {name: _load(args.reports, f"{name}.json") for name in SOURCES}
    text = args.doc.read_text()
    for name, render in BLOCKS.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.DOTALL
        )
        if pattern.search(text):
            body = render(reports)
            text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    args.doc.write_text(text)
    if reports["matrix"] is not None:
        plots(reports["matrix"], args.plots)
    print(f"wrote {args.doc} and {args.plots}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
