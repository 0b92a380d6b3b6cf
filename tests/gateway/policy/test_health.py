"""Pool health: background probes and passive marks steer the least-outstanding pick."""

from __future__ import annotations

import httpx

from serving.gateway.app import create_app
from serving.gateway.metrics import Metrics
from serving.gateway.settings import HealthCheck, parse_settings
from serving.gateway.upstreams.health import PoolHealth
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import free_port, serve


def test_streaks_decide_health() -> None:
    pool = PoolHealth(
        "vllm",
        ["http://a/v1", "http://b/v1"],
        HealthCheck(unhealthy_after=2, healthy_after=2),
        Metrics(),
    )
    pool.observe(0, False)
    assert pool.healthy == [True, True]
    pool.observe(0, False)
    assert pool.healthy == [False, True] and pool.any_healthy()
    pool.observe(0, True)
    assert not pool.healthy[0]
    pool.observe(0, True)
    assert pool.healthy[0]
    pool.connection_failed(1)
    assert pool.healthy == [True, False]


def test_a_dead_endpoint_gets_no_traffic_and_a_dead_pool_is_skipped() -> None:
    live = FakeUpstream([Reply.json(chat_completion("from live"))])
    backup = FakeUpstream([Reply.json(chat_completion("from backup"))])
    dead = free_port()
    with serve(live.app) as live_url, serve(backup.app) as backup_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {
                        "name": "pool",
                        "base_url": f"http://127.0.0.1:{dead}/v1",
                        "endpoints": [live_url + "/v1"],
                        "locality": "local",
                        "retry": {"attempts": 1, "backoff_base": 0.01},
                        "circuit": {"enabled": False},
                        "health": {"interval": 0.05, "unhealthy_after": 1},
                    },
                    {
                        "name": "deadpool",
                        "base_url": f"http://127.0.0.1:{dead}/v1",
                        "locality": "local",
                        "circuit": {"enabled": False},
                        "health": {"interval": 0.05, "unhealthy_after": 1},
                    },
                    {"name": "backup", "base_url": backup_url + "/v1", "locality": "local"},
                ],
                "routes": [
                    {"model": "pooled", "targets": [{"upstream": "pool", "model": "m"}]},
                    {
                        "model": "dead",
                        "targets": [
                            {"upstream": "deadpool", "model": "m"},
                            {"upstream": "backup", "model": "m"},
                        ],
                    },
                ],
            }
        )
        with serve(create_app(settings)) as url:
            body = {"model": "pooled", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(6):
                r = httpx.post(url + "/v1/chat/completions", json=body, timeout=5)
                # Probes (or the passive mark of a first refused connection, then a retry on
                # the other endpoint) keep every request off the dead endpoint.
                assert r.status_code == 200, r.text
            assert len(live.requests) == 6
            r = httpx.post(url + "/v1/chat/completions", json={**body, "model": "dead"})
            assert r.status_code == 200
            assert r.headers["x-serving-fallback"] == "deadpool/m:unhealthy"
            metrics = httpx.get(url + "/metrics").text
            gauge = f'endpoint="http://127.0.0.1:{dead}/v1",upstream="pool"}} 0.0'
            assert "serving_endpoint_healthy{" + gauge in metrics
