"""The gateway objects: its config (in the lead's settings format, engines as local upstreams,
keys only as env var names), secrets as env vars, probes, rollout on config change, HPA, PDB."""

from __future__ import annotations

import pytest

from serving.gateway.settings import parse_settings
from tests.helm.chartkit import (
    FULLNAME,
    NAMESPACE,
    Obj,
    Renderer,
    engine_workloads,
    example_files,
    selects,
)

GATEWAY = f"{FULLNAME}-gateway"


def _deployment(chart: Renderer, *files: str, values: Obj | None = None) -> Obj:
    return chart.render(*files, values=values).one("Deployment", GATEWAY)


def _container(deployment: Obj) -> Obj:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["gateway"]
    result: Obj = containers[0]
    return result


@pytest.mark.parametrize("example", [None, *example_files()])
def test_config_is_valid_for_the_gateway(chart: Renderer, example: str | None) -> None:
    rendered = chart.render(example) if example else chart.render()
    settings = parse_settings(rendered.gateway_config(), source=f"{example} gateway.yaml")
    assert settings.routes
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8000


@pytest.mark.parametrize("example", example_files())
def test_local_upstreams_point_at_engine_services(chart: Renderer, example: str) -> None:
    rendered = chart.render(example)
    config = parse_settings(rendered.gateway_config())
    engines = [s for s in rendered.all("Service") if s["metadata"]["name"] != GATEWAY]
    local = [u for u in config.upstreams if u.locality == "local"]
    assert len(local) == len(engines)
    for upstream in local:
        service = rendered.one("Service", f"{FULLNAME}-{upstream.name}")
        assert upstream.base_url == f"http://{service['metadata']['name']}:8000/v1"
        assert service["spec"]["ports"][0]["port"] == 8000
        assert upstream.dialect == "openai"


def test_engine_route_chains_the_engine_then_its_fallbacks(chart: Renderer) -> None:
    config = parse_settings(chart.render("llama-3.1-70b.yaml").gateway_config())
    route = config.route_for("default")
    assert route is not None and route.model == "llama-3.1-70b"
    assert [(t.upstream, t.model) for t in route.targets] == [
        ("llama-70b", "llama-3.1-70b"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    assert route.targets[0].context_window == 32768
    assert config.upstream("anthropic").locality == "hosted"


def test_hosted_keys_come_from_secrets_and_never_enter_the_config(chart: Renderer) -> None:
    rendered = chart.render("gateway-hosted.yaml")
    config = parse_settings(rendered.gateway_config())
    assert {u.name: u.api_key_env for u in config.upstreams} == {
        "anthropic": "ANTHROPIC_API_KEY",
        "openai": "OPENAI_API_KEY",
    }
    assert config.server.api_keys_env == "SERVING_API_KEYS"
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in _container(rendered.one("Deployment", GATEWAY))["env"]
    }
    assert env == {
        "ANTHROPIC_API_KEY": {"name": "hosted-keys", "key": "anthropic"},
        "OPENAI_API_KEY": {"name": "hosted-keys", "key": "openai"},
        "SERVING_API_KEYS": {"name": "serving-client-keys", "key": "api-keys"},
    }
    assert rendered.all("Secret") == []
    assert engine_workloads(rendered) == []
    assert rendered.all("PersistentVolumeClaim") == []


def test_no_client_keys_means_no_api_keys_env(chart: Renderer) -> None:
    config = parse_settings(chart.render().gateway_config())
    assert config.server.api_keys_env is None


def test_extra_config_is_merged_verbatim(chart: Renderer) -> None:
    extra = {
        "admin": {"enabled": True, "key_env": "SERVING_ADMIN_KEY"},
        "privacy": {"header": "x-private"},
        "server": {"keys": [{"name": "batch", "key_env": "BATCH_KEY", "private": True}]},
    }
    config = chart.render(values={"gateway": {"config": {"extra": extra}}}).gateway_config()
    settings = parse_settings(config)
    assert settings.admin.enabled and settings.admin.key_env == "SERVING_ADMIN_KEY"
    assert settings.privacy.header == "x-private"
    assert [k.name for k in settings.server.keys] == ["batch"]
    assert settings.server.port == 8000  # merged into, not replacing, the chart's server block
    assert settings.upstreams[0].name == "llama-8b"


def test_config_change_rolls_the_pods(chart: Renderer) -> None:
    def checksum(values: Obj | None) -> str:
        annotations = _deployment(chart, values=values)["spec"]["template"]["metadata"][
            "annotations"
        ]
        value: str = annotations["checksum/config"]
        return value

    base = checksum(None)
    assert len(base) == 64
    assert checksum({"gateway": {"config": {"maxBodyBytes": 1024}}}) != base
    assert checksum({"gateway": {"resources": {"limits": {"memory": "2Gi"}}}}) == base


def test_command_probes_and_security(chart: Renderer) -> None:
    deployment = _deployment(chart)
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["command"] == [
        "serving",
        "gateway",
        "--config",
        "/etc/serving/gateway.yaml",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/serving")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == GATEWAY
    assert "nvidia.com/gpu" not in str(container["resources"])


def test_hpa_on_cpu_and_pdb(chart: Renderer) -> None:
    rendered = chart.render()
    deployment = rendered.one("Deployment", GATEWAY)
    assert "replicas" not in deployment["spec"]  # the HPA owns the replica count
    hpa = rendered.one("HorizontalPodAutoscaler", GATEWAY)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": GATEWAY,
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = rendered.one("PodDisruptionBudget", GATEWAY)
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


def test_fixed_replicas_without_autoscaling(chart: Renderer) -> None:
    values = {"gateway": {"autoscaling": {"enabled": False}, "replicas": 3}}
    rendered = chart.render(values=values)
    assert rendered.one("Deployment", GATEWAY)["spec"]["replicas"] == 3
    assert rendered.all("HorizontalPodAutoscaler") == []


def test_service_selects_gateway_pods_only(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-8b.yaml")
    service = rendered.one("Service", GATEWAY)
    selector = {"matchLabels": service["spec"]["selector"]}
    assert selects(
        selector, rendered.one("Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]
    )
    engine = rendered.one("Deployment", f"{FULLNAME}-llama-8b")
    assert not selects(selector, engine["spec"]["template"]["metadata"]["labels"])
    assert service["metadata"]["namespace"] == NAMESPACE


def test_gateway_can_be_disabled(chart: Renderer) -> None:
    rendered = chart.render(values={"gateway": {"enabled": False}})
    assert [o for o in rendered.objects if "gateway" in o["metadata"]["name"]] == []
    assert rendered.one("Deployment", f"{FULLNAME}-llama-8b")
