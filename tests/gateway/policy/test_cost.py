"""Cost arithmetic: the price table, local GPU-time pricing and savings."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.metrics import Metrics
from serving.gateway.policy.cost import CostMeter, hosted_cost, load_price_table, local_cost
from serving.gateway.settings import LocalCost, Price, parse_settings


def settings(**extra: Any) -> Any:
    data: dict[str, Any] = {
        "upstreams": [
            {"name": "anthropic", "base_url": "https://api.anthropic.com/v1", "locality": "hosted"},
            {"name": "openai", "base_url": "https://api.openai.com/v1", "locality": "hosted"},
            {
                "name": "vllm",
                "base_url": "http://vllm:8000/v1",
                "locality": "local",
                "local_cost": {
                    "gpu_hour_usd": 3.6,
                    "input_tokens_per_second": 1000,
                    "output_tokens_per_second": 100,
                },
            },
        ],
        "routes": [
            {
                "model": "smart",
                "targets": [
                    {"upstream": "anthropic", "model": "claude-3-5-sonnet-20241022"},
                    {"upstream": "openai", "model": "gpt-4o"},
                    {"upstream": "vllm", "model": "llama"},
                ],
            },
            {"model": "local-only", "targets": [{"upstream": "vllm", "model": "llama"}]},
        ],
        **extra,
    }
    return parse_settings(data)


def test_the_packaged_table_has_the_november_2024_list_prices() -> None:
    table = load_price_table()
    assert table["claude-3-5-sonnet-20241022"] == Price(input=3.0, output=15.0)
    assert table["claude-3-5-haiku-20241022"] == Price(input=0.8, output=4.0)
    assert table["gpt-4o"] == Price(input=2.5, output=10.0)
    assert table["gpt-4o-2024-08-06"] == Price(input=2.5, output=10.0)
    assert table["gpt-4o-mini"] == Price(input=0.15, output=0.6)
    assert table["gemini-1.5-pro"] == Price(input=1.25, output=5.0)
    assert table["gemini-1.5-flash"] == Price(input=0.075, output=0.3)


def test_hosted_cost_is_per_million_tokens() -> None:
    usage = c.Usage(input_tokens=1_000_000, output_tokens=200_000)
    assert hosted_cost(Price(input=3, output=15), usage) == pytest.approx(3 + 3)


def test_local_cost_is_gpu_time_at_the_hourly_price() -> None:
    config = LocalCost(gpu_hour_usd=3.6, input_tokens_per_second=1000, output_tokens_per_second=100)
    # 2000 in / 1000 tps = 2 s; 500 out / 100 tps = 5 s; 7 s at $0.001/s
    assert local_cost(config, c.Usage(2000, 500)) == pytest.approx(0.007)


def test_a_local_answer_saves_what_the_first_hosted_target_would_have_cost() -> None:
    s = settings()
    meter = CostMeter(s, Metrics(), load_price_table())
    route = s.routes[0]
    usage = c.Usage(input_tokens=10_000, output_tokens=1_000)
    charge = meter.charge(route, route.targets[2], usage)
    local = 10 + 10  # seconds: 10k/1000 + 1k/100, at $0.001/s
    assert charge.cost == pytest.approx(local * 0.001)
    claude = (10_000 * 3 + 1_000 * 15) / 1e6
    assert charge.saved == pytest.approx(claude - 0.02)


def test_hosted_answers_save_nothing_and_unknown_prices_are_none() -> None:
    s = settings()
    meter = CostMeter(s, Metrics(), load_price_table())
    route = s.routes[0]
    gpt = meter.charge(route, route.targets[1], c.Usage(1000, 1000))
    assert gpt.cost == pytest.approx((1000 * 2.5 + 1000 * 10) / 1e6) and gpt.saved == 0
    assert meter.charge(s.routes[1], s.routes[1].targets[0], c.Usage(1000, 10)).saved == 0


def test_config_prices_override_the_table_and_target_prices_win() -> None:
    s = settings(cost={"prices": {"gpt-4o": {"input": 1, "output": 1}}})
    meter = CostMeter(s, Metrics(), load_price_table())
    assert meter.price(s.routes[0].targets[1]) == Price(input=1, output=1)
    assert meter.price(s.routes[0].targets[0]) == Price(input=3, output=15)


def test_record_counts_cost_and_savings() -> None:
    s = settings()
    metrics = Metrics()
    meter = CostMeter(s, metrics, load_price_table())
    route = s.routes[0]
    meter.record(route, route.targets[2], c.Usage(10_000, 1_000))
    labels = {"route": "smart", "target": "vllm/llama"}
    assert metrics.registry.get_sample_value("serving_cost_usd_total", labels) == pytest.approx(
        0.02
    )
    saved = metrics.registry.get_sample_value("serving_saved_usd_total", labels)
    assert saved == pytest.approx(0.045 - 0.02)
