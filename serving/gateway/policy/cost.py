"""What an answer cost, and what self-hosting saved.

Hosted targets: list price per million tokens (prices.yaml, overridden by `cost.prices`, then by
a target's own `price`). Local targets: GPU time at an hourly price under an assumed aggregate
throughput (see `LocalCost` in settings.py):

    local = gpu_hour_usd / 3600 * (input / input_tps + output / output_tps)

Saved by self-hosting, for an answer from a local target: what the route's first hosted target
would have charged for the same tokens, minus the local cost (zero when the route has no hosted
target or its price is unknown; it may be negative, and is then counted as zero saved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from serving.gateway import canonical as c
from serving.gateway.metrics import Metrics
from serving.gateway.settings import LocalCost, Price, Route, Settings, Target

PRICES_FILE = Path(__file__).with_name("prices.yaml")
_MILLION = 1_000_000


def load_price_table(path: Path = PRICES_FILE) -> dict[str, Price]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the price table must be a mapping of model -> price")
    return {str(model): Price.model_validate(price) for model, price in data.items()}


def hosted_cost(price: Price, usage: c.Usage) -> float:
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / _MILLION


def local_cost(config: LocalCost, usage: c.Usage) -> float:
    gpu_seconds = (
        usage.input_tokens / config.input_tokens_per_second
        + usage.output_tokens / config.output_tokens_per_second
    )
    return gpu_seconds * config.gpu_hour_usd / 3600.0


@dataclass(frozen=True, slots=True)
class Charge:
    cost: float | None  # None: no price known for this target
    saved: float  # by self-hosting; 0 for hosted answers


class CostMeter:
    """Prices answers; built once per app from the settings and the packaged table."""

    def __init__(self, settings: Settings, metrics: Metrics, table: dict[str, Price]) -> None:
        self._settings = settings
        self._metrics = metrics
        self._prices = {**table, **settings.cost.prices}
        self._local = {u.name: u.locality == "local" for u in settings.upstreams}

    def price(self, target: Target) -> Price | None:
        return target.price or self._prices.get(target.model)

    def _local_config(self, target: Target) -> LocalCost:
        return self._settings.upstream(target.upstream).local_cost or self._settings.cost.local

    def charge(self, route: Route, target: Target, usage: c.Usage) -> Charge:
        if self._local[target.upstream]:
            cost = local_cost(self._local_config(target), usage)
            hosted = next((t for t in route.targets if not self._local[t.upstream]), None)
            price = self.price(hosted) if hosted is not None else None
            saved = max(0.0, hosted_cost(price, usage) - cost) if price is not None else 0.0
            return Charge(cost, saved)
        price = self.price(target)
        return Charge(hosted_cost(price, usage) if price is not None else None, 0.0)

    def record(
        self, route: Route, target: Target, usage: c.Usage, known: Charge | None = None
    ) -> Charge:
        """Price an answer and count it (called once per answered request); `known` is its
        charge when it was already priced for these tokens (a whole answer's, up front)."""
        charge = known if known is not None else self.charge(route, target, usage)
        m = self._metrics  # once per answered request: the children are cached
        if charge.cost is not None:
            m.child(m.cost, route.model, target.label).inc(charge.cost)
        if charge.saved > 0:
            m.child(m.saved, route.model, target.label).inc(charge.saved)
        return charge
