"""The gateway pod's shutdown matches its drain settings, and its ops port is wired through."""

from __future__ import annotations

import pytest

from serving.gateway.settings import parse_settings
from tests.helm.chartkit import FULLNAME, Obj, Renderer

GATEWAY = f"{FULLNAME}-gateway"


def _pod(chart: Renderer, values: Obj | None = None) -> tuple[Obj, Obj]:
    rendered = chart.render(values=values)
    spec = rendered.one("Deployment", GATEWAY)["spec"]["template"]["spec"]
    return spec, parse_settings(rendered.gateway_config()).model_dump()


@pytest.mark.parametrize(
    ("drain", "grace"),
    [
        ({}, 5 + 30 + 15),  # the defaults
        ({"window": 10, "deadline": 120, "preStopSleep": 0}, 120 + 15),
        ({"window": 20, "deadline": 20, "preStopSleep": 3, "retryAfter": 2}, 3 + 20 + 15),
    ],
)
def test_termination_grace_and_pre_stop_follow_the_drain_settings(
    chart: Renderer, drain: Obj, grace: int
) -> None:
    pod, config = _pod(chart, {"gateway": {"drain": drain}})
    defaults = {"window": 5, "deadline": 30, "retryAfter": 5, "preStopSleep": 5}
    want = {**defaults, **drain}
    assert pod["terminationGracePeriodSeconds"] == grace
    container = pod["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        str(want["preStopSleep"]),
    ]
    assert config["server"]["drain"] == {
        "window": want["window"],
        "deadline": want["deadline"],
        "retry_after": want["retryAfter"],
    }
    # The kubelet's SIGKILL comes after the preStop sleep and the whole drain.
    assert grace > want["preStopSleep"] + max(want["window"], want["deadline"])


def test_the_ops_port_is_in_the_config_the_container_and_the_network_policy(
    chart: Renderer,
) -> None:
    rendered = chart.render(values={"networkPolicy": {"enabled": True}})
    pod = rendered.one("Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert parse_settings(rendered.gateway_config()).ops.port == 9090
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http": 8000, "ops": 9090}
    policy = rendered.one("NetworkPolicy", GATEWAY)
    allowed = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert 9090 in allowed and 8000 in allowed


def test_without_an_ops_port_the_config_has_none(chart: Renderer) -> None:
    pod, config = _pod(chart, {"gateway": {"ops": {"port": None}}})
    assert config["ops"]["port"] is None
    assert [p["name"] for p in pod["containers"][0]["ports"]] == ["http"]
