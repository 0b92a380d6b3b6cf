"""`serving drill`: a failover drill against a running gateway.

For each hosted target in turn: force its circuit open (admin API), send one request in each
dialect (OpenAI and Anthropic, plain httpx) for every route whose chain holds it, show which
target answered (`x-serving-target`) and the latency added against a baseline taken first, then
close the circuit again. Exits non-zero when any request fails or is answered by the target
that was forced open. Circuits are restored even when the drill is interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import quote

import httpx

from serving.gateway.settings import Route, Settings

DIALECTS = ("openai", "anthropic")


@dataclass(slots=True)
class Probe:
    route: str
    dialect: str
    status: int
    target: str | None
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


class Drill:
    def __init__(
        self,
        settings: Settings,
        client: httpx.Client,
        *,
        admin_key: str,
        api_key: str | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self._admin = {"authorization": f"Bearer {admin_key}"}
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}

    def hosted_targets(self) -> list[str]:
        hosted = {u.name for u in self.settings.upstreams if u.locality == "hosted"}
        seen: dict[str, None] = {}
        for route in self.settings.routes:
            for t in route.targets:
                if t.upstream in hosted:
                    seen.setdefault(t.label)
        return list(seen)

    def routes_with(self, label: str) -> list[Route]:
        return [r for r in self.settings.routes if any(t.label == label for t in r.targets)]

    def probe(self, route: Route, dialect: str) -> Probe:
        body = {
            "model": route.model,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Reply with the word: pong"}],
        }
        path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"
        headers = {**self._auth, "anthropic-version": "2023-06-01"}
        started = time.perf_counter()
        try:
            r = self.client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - started
            return Probe(route.model, dialect, 0, None, elapsed, f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - started
        error = None if r.status_code == 200 else r.text[:200]
        return Probe(
            route.model, dialect, r.status_code, r.headers.get("x-serving-target"), elapsed, error
        )

    def set_circuit(self, label: str, action: str) -> None:
        r = self.client.post(
            f"/admin/circuits/{quote(label, safe='/')}/{action}", headers=self._admin
        )
        if r.status_code != 200:
            raise DrillError(
                f"cannot {action} the circuit of {label}: HTTP {r.status_code} {r.text[:200]}"
            )

    @contextmanager
    def forced_open(self, label: str) -> Iterator[None]:
        self.set_circuit(label, "open")
        try:
            yield
        finally:
            self.set_circuit(label, "close")


class DrillError(Exception):
    """The drill could not run (admin API unreachable or refused)."""


def run(drill: Drill, out: TextIO) -> int:
    """Run the drill, print a table; 0 when every request succeeded without the open target."""
    baseline = {(r.model, d): drill.probe(r, d) for r in drill.settings.routes for d in DIALECTS}
    failed = [p for p in baseline.values() if not p.ok]
    _print(out, "baseline", list(baseline.values()), baseline)
    targets = drill.hosted_targets()
    if not targets:
        print("no hosted targets in this config: nothing to drill", file=out)
    for label in targets:
        with drill.forced_open(label):
            probes = [drill.probe(r, d) for r in drill.routes_with(label) for d in DIALECTS]
        for p in probes:
            if p.target == label:
                p.error = f"answered by {label}, whose circuit was open"
        failed += [p for p in probes if not p.ok]
        _print(out, f"{label} forced open", probes, baseline)
    verdict = "FAILED" if failed else "passed"
    print(f"\ndrill {verdict}: {len(failed)} failed request(s)", file=out)
    return 1 if failed else 0


def _print(
    out: TextIO, title: str, probes: list[Probe], baseline: dict[tuple[str, str], Probe]
) -> None:
    print(f"\n== {title}", file=out)
    print(f"  {'route':<24} {'dialect':<10} {'status':<6} {'answered by':<40} added", file=out)
    for p in probes:
        base = baseline[(p.route, p.dialect)]
        added = f"{(p.seconds - base.seconds) * 1000:+.0f} ms" if base is not p else "-"
        target = p.target or "-"
        print(f"  {p.route:<24} {p.dialect:<10} {p.status:<6} {target:<40} {added}", file=out)
        if p.error:
            print(f"    error: {p.error}", file=out)
