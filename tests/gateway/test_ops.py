"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import httpx

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import Reply, chat_completion
from tests.support.gateway_fixtures import GatewayUnderTest
from tests.support.servers import free_port, serve


def test_health_and_ready(gateway: GatewayUnderTest) -> None:
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/ready")
    assert ready.status_code == 200
    assert ready.json()["upstreams"] == {"fake": True, "dead": False}


def test_not_ready_when_no_upstream_answers() -> None:
    settings = parse_settings(
        {
            "upstreams": [{"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}/v1"}],
            "routes": [{"model": "m", "targets": [{"upstream": "dead", "model": "m"}]}],
        }
    )
    with serve(create_app(settings)) as url:
        ready = httpx.get(url + "/ready")
        assert httpx.get(url + "/health").status_code == 200
    assert ready.status_code == 503 and ready.json()["ready"] is False


def test_metrics_count_requests_tokens_and_fallbacks(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("hi", prompt_tokens=5, completion_tokens=2)))
    body = {
        "model": "with-fallback",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert httpx.post(gateway.url + "/v1/messages", json=body).status_code == 200
    text = httpx.get(gateway.url + "/metrics").text
    target = 'target="fake/upstream-model"'
    assert (
        "serving_requests_total"
        f'{{dialect="anthropic",route="with-fallback",status="200",{target}}} 1.0' in text
    )
    assert f'serving_tokens_total{{direction="input",route="with-fallback",{target}}} 5.0' in text
    assert f'serving_tokens_total{{direction="output",route="with-fallback",{target}}} 2.0' in text
    assert 'serving_fallbacks_total{reason="connect",route="with-fallback"} 1.0' in text
    assert "serving_request_duration_seconds_bucket" in text


def test_unknown_path_is_a_404_in_openai_envelope(gateway: GatewayUnderTest) -> None:
    response = httpx.get(gateway.url + "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"  # as OpenAI answers
