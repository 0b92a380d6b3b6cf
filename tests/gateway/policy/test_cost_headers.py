"""Cost per request on the wire (`x-serving-cost-usd`) and in the metrics, savings included."""

from __future__ import annotations

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion, chat_stream
from tests.support.servers import serve


def test_cost_header_and_saved_metric() -> None:
    hosted = FakeUpstream([Reply.json({"error": {"message": "down"}}, 503)])
    local = FakeUpstream(
        [Reply.json(chat_completion("hi", prompt_tokens=1000, completion_tokens=100))]
    )
    with serve(hosted.app) as h, serve(local.app) as ll:
        settings = parse_settings(
            {
                "upstreams": [
                    {
                        "name": "anthropic",
                        "base_url": h + "/v1",
                        "locality": "hosted",
                        "retry": {"attempts": 0},
                    },
                    {
                        "name": "vllm",
                        "base_url": ll + "/v1",
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
                            {"upstream": "vllm", "model": "llama"},
                        ],
                    }
                ],
            }
        )
        with serve(create_app(settings)) as url:
            body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
            r = httpx.post(url + "/v1/chat/completions", json=body)
            assert r.status_code == 200
            # 1000/1000 s + 100/100 s = 2 s of a $3.60/h GPU
            assert float(r.headers["x-serving-cost-usd"]) == pytest.approx(0.002)
            metrics = httpx.get(url + "/metrics").text
            claude = (1000 * 3 + 100 * 15) / 1e6
            saved = [ln for ln in metrics.splitlines() if ln.startswith("serving_saved_usd_total{")]
            assert len(saved) == 1
            assert float(saved[0].rsplit(" ", 1)[1]) == pytest.approx(claude - 0.002)
            # Streams: no header (it leaves before usage is known), and no double counting.
            local.script(Reply.sse(chat_stream(("a",))))
            r = httpx.post(url + "/v1/messages", json={**body, "max_tokens": 8, "stream": True})
            assert r.status_code == 200 and "x-serving-cost-usd" not in r.headers
