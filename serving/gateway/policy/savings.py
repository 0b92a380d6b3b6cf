"""What the decision log says routing cost, against sending every request to one premium
model at the price table's prices (`serving route report`).

Per route that served: requests, tokens, the logged cost (the gateway's own estimate at the
time, local answers at GPU-time cost), and what the same tokens would have cost at the
premium model's price. Requests without usage (failed, or streams cut before usage) count as
requests but add no tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.gateway.settings import Price

_MILLION = 1_000_000


@dataclass(slots=True)
class Row:
    route: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    premium_cost: float = 0.0
    unpriced: int = 0  # answers whose cost was unknown (no price for the target)


def read_log(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(entry, dict) or "route" not in entry:
            raise ValueError(f"{path}:{n}: not a decision log entry")
        out.append(entry)
    return out


def summarise(
    entries: list[dict[str, Any]], prices: Mapping[str, Price], premium: str
) -> tuple[list[Row], Row]:
    price = prices.get(premium)
    if price is None:
        raise ValueError(f"no price for the premium model {premium!r} (add it to cost.prices)")
    rows: dict[str, Row] = {}
    total = Row("all")
    for e in entries:
        row = rows.setdefault(str(e["route"]), Row(str(e["route"])))
        i, o = int(e.get("input_tokens") or 0), int(e.get("output_tokens") or 0)
        premium_cost = (i * price.input + o * price.output) / _MILLION
        cost = e.get("cost_usd")
        for r in (row, total):
            r.requests += 1
            r.input_tokens += i
            r.output_tokens += o
            r.premium_cost += premium_cost
            if isinstance(cost, int | float):
                r.cost += float(cost)
            elif i or o:
                r.unpriced += 1
    return sorted(rows.values(), key=lambda r: -r.requests), total


def table(rows: list[Row], total: Row, premium: str) -> str:
    head = f"{'route':<24} {'requests':>8} {'in tok':>10} {'out tok':>9} {'cost $':>10}"
    head += f" {'premium $':>10} {'saved':>7}"
    lines = [f"cost per route vs always {premium}", head, "-" * len(head)]
    for r in [*rows, total]:
        saved = 1 - r.cost / r.premium_cost if r.premium_cost else 0.0
        if r is total:
            lines.append("-" * len(head))
        lines.append(
            f"{r.route:<24} {r.requests:>8} {r.input_tokens:>10} {r.output_tokens:>9}"
            f" {r.cost:>10.4f} {r.premium_cost:>10.4f} {saved:>6.0%}"
        )
    if total.unpriced:
        lines.append(f"{total.unpriced} answers had no known price and count as $0")
    return "\n".join(lines)


def render_png(rows: list[Row], total: Row, premium: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    names = [r.route for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.bar(names, [r.requests for r in rows], color="#4c72b0")
    left.set_title("requests per route")
    left.tick_params(axis="x", rotation=30)
    xs = range(len(rows) + 1)
    width = 0.4
    routed = [r.cost for r in rows] + [total.cost]
    always = [r.premium_cost for r in rows] + [total.premium_cost]
    right.bar([x - width / 2 for x in xs], routed, width, label="routed", color="#55a868")
    right.bar(
        [x + width / 2 for x in xs], always, width, label=f"always {premium}", color="#c44e52"
    )
    right.set_xticks(list(xs), [*names, "all"], rotation=30)
    right.set_ylabel("US dollars")
    saved = 1 - total.cost / total.premium_cost if total.premium_cost else 0.0
    right.set_title(f"cost: routed vs always-premium (saved {saved:.0%})")
    right.legend()
    fig.text(
        0.5,
        0.005,
        "Cost only: answer quality must be measured by your own evaluation.",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
