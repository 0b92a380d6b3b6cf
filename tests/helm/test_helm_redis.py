"""Redis for shared gateway state: off by default; deployed by the chart (Deployment, Service,
a NetworkPolicy that admits only the gateway), or an existing one by URL or Secret. Whichever,
the gateway config names the env var and the URL reaches the container only through it."""

from __future__ import annotations

import pytest

from serving.gateway.settings import parse_settings
from tests.helm.chartkit import FULLNAME, Obj, Renderer, env_of, selects

GATEWAY = f"{FULLNAME}-gateway"
REDIS = f"{FULLNAME}-redis"


def _gateway_env(chart: Renderer, values: Obj | None) -> dict[str, Obj]:
    deployment = chart.render(values=values).one("Deployment", GATEWAY)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return env_of(container) if container.get("env") else {}


def test_no_redis_by_default(chart: Renderer) -> None:
    rendered = chart.render()
    assert REDIS not in rendered.names("Deployment") + rendered.names("Service")
    assert "state" not in rendered.gateway_config()
    assert "SERVING_REDIS_URL" not in _gateway_env(chart, None)


def test_deployed_redis_is_wired_into_the_gateway(chart: Renderer) -> None:
    values = {"redis": {"deploy": True}}
    rendered = chart.render(values=values)
    deployment = rendered.one("Deployment", REDIS)
    service = rendered.one("Service", REDIS)
    pod = deployment["spec"]["template"]
    assert selects(service["spec"]["selector"], pod["metadata"]["labels"])
    assert service["spec"]["ports"][0]["port"] == 6379
    args = pod["spec"]["containers"][0]["args"]
    assert args[:4] == ["--save", "", "--appendonly", "no"]  # counters only, nothing on disk
    env = _gateway_env(chart, values)
    assert env["SERVING_REDIS_URL"]["value"] == f"redis://{REDIS}:6379/0"
    config = rendered.gateway_config()
    assert config["state"] == {"redis_url_env": "SERVING_REDIS_URL"}
    parse_settings(config, "rendered gateway.yaml")  # the gateway accepts it


def test_deployed_redis_admits_only_the_gateway(chart: Renderer) -> None:
    rendered = chart.render(values={"redis": {"deploy": True}})
    policy = rendered.one("NetworkPolicy", REDIS)
    gateway_pod = rendered.one("Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]
    redis_pod = rendered.one("Deployment", REDIS)["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], redis_pod)
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert selects(peer["podSelector"], gateway_pod)
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    without = chart.render(values={"redis": {"deploy": True}, "networkPolicy": {"enabled": False}})
    assert REDIS not in without.names("NetworkPolicy")


def test_an_existing_redis_by_secret_never_puts_the_url_in_values(chart: Renderer) -> None:
    values = {"redis": {"existingSecret": {"name": "redis-creds", "key": "uri"}}}
    rendered = chart.render(values=values)
    assert REDIS not in rendered.names("Deployment")
    env = _gateway_env(chart, values)
    ref = env["SERVING_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "redis-creds", "key": "uri"}
    assert rendered.gateway_config()["state"]["redis_url_env"] == "SERVING_REDIS_URL"


def test_an_existing_redis_by_url(chart: Renderer) -> None:
    values = {"redis": {"url": "redis://redis.infra:6379/2", "env": "MY_REDIS"}}
    env = _gateway_env(chart, values)
    assert env["MY_REDIS"]["value"] == "redis://redis.infra:6379/2"
    assert chart.render(values=values).gateway_config()["state"] == {"redis_url_env": "MY_REDIS"}


@pytest.mark.parametrize(
    "redis",
    [
        {"deploy": True, "url": "redis://x:6379/0"},
        {"deploy": True, "existingSecret": {"name": "s"}},
        {"url": "redis://x:6379/0", "existingSecret": {"name": "s"}},
    ],
)
def test_two_redis_sources_are_refused(chart: Renderer, redis: Obj) -> None:
    assert "choose one of redis.deploy" in chart.error(values={"redis": redis})
