"""The opt-in decision log: one JSON line per answered request, for `serving route report`.

Each line holds redacted facts (sizes, counts, detected tasks, never text), the decision (the
rule that fired, the chosen route, the classifier's tier and score), the target that served,
its tokens and cost. Enabled by `routing.decision_log: PATH`. Lines are appended by one
`write` each on a line-buffered file, so lines from one process never interleave; several
replicas should each log to their own file.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.gateway import canonical as c
from serving.gateway.policy.cost import Charge

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome

log = logging.getLogger("serving.gateway.policy.decisions")


def entry(
    outcome: Outcome, usage: c.Usage | None, charge: Charge | None, status: int
) -> dict[str, Any]:
    """One log line's object (no request content: sizes, counts and labels only)."""
    d = outcome.decision
    line: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "route": outcome.route.model,
        "target": outcome.target.label,
        "status": status,
        "fallbacks": outcome.fallbacks,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "cost_usd": charge.cost if charge else None,
    }
    if d is not None:
        s = d.signals
        line.update(
            rule=d.rule,
            prompt_tokens=s.prompt_tokens,
            tasks=sorted(s.tasks),
            needs=sorted(s.needs),
            quality=s.hints.quality,
            cost_sensitive=s.hints.cost_sensitive,
            tier=d.score.tier if d.score else None,
            score=round(d.score.score, 4) if d.score else None,
            classifier=d.score.by if d.score else None,
            classifier_fallback=d.fallback,
        )
    return line


class DecisionLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", buffering=1, encoding="utf-8")

    def write(
        self, outcome: Outcome, usage: c.Usage | None, charge: Charge | None, status: int
    ) -> None:
        try:
            self._file.write(json.dumps(entry(outcome, usage, charge, status)) + "\n")
        except (OSError, ValueError) as exc:  # a full disk must not fail the request
            log.warning("decision log %s: write failed (%s)", self.path, exc)

    def close(self) -> None:
        self._file.close()
