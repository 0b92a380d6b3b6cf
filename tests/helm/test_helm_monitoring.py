"""Monitoring objects (ServiceMonitor/PodMonitor, dashboards), NOTES.txt and the helm test pod."""

from __future__ import annotations

import json
import re

import pytest

from tests.helm.chartkit import CHART, FULLNAME, NAMESPACE, RELEASE, Renderer, run_helm, selects

GATEWAY_METRICS = [
    "serving_requests_total",
    "serving_request_duration_seconds",
    "serving_time_to_first_token_seconds",
    "serving_tokens_total",
    "serving_fallbacks_total",
    "serving_circuit_state",
    "serving_cost_usd_total",
]
ENGINE_METRICS = [
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:generation_tokens_total",
]


def test_service_monitors_scrape_engines_on_http_and_the_gateway_on_its_ops_port(
    chart: Renderer,
) -> None:
    rendered = chart.render("llama-3.1-8b.yaml")
    services = {s["metadata"]["name"]: s for s in rendered.all("Service")}
    assert sorted(services) == [f"{FULLNAME}-gateway", f"{FULLNAME}-llama-8b"]
    picked: dict[str, list[str]] = {}
    for name, port in ((FULLNAME, "http"), (f"{FULLNAME}-gateway", "ops")):
        monitor = rendered.one("ServiceMonitor", name)
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert spec["endpoints"] == [{"port": port, "path": "/metrics", "interval": "15s"}]
        picked[name] = sorted(
            n for n, s in services.items() if selects(spec["selector"], s["metadata"]["labels"])
        )
        for service in picked[name]:  # every selected Service has the scraped port
            assert port in [p["name"] for p in services[service]["spec"]["ports"]]
    assert picked == {
        FULLNAME: [f"{FULLNAME}-llama-8b"],
        f"{FULLNAME}-gateway": [f"{FULLNAME}-gateway"],
    }
    gateway_ports = services[f"{FULLNAME}-gateway"]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in gateway_ports] == [("http", 8000), ("ops", 9090)]


def test_without_an_ops_port_one_monitor_scrapes_both_on_http(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-8b.yaml", values={"gateway": {"ops": {"port": None}}})
    monitor = rendered.one("ServiceMonitor", FULLNAME)
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    services = rendered.all("Service")
    assert all(selects(monitor["spec"]["selector"], s["metadata"]["labels"]) for s in services)
    assert len(rendered.all("ServiceMonitor")) == 1


def test_pod_monitor(chart: Renderer) -> None:
    rendered = chart.render(values={"monitoring": {"kind": "PodMonitor"}})
    engines = rendered.one("PodMonitor", FULLNAME)["spec"]
    gateway = rendered.one("PodMonitor", f"{FULLNAME}-gateway")["spec"]
    assert engines["podMetricsEndpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s"}
    ]
    assert gateway["podMetricsEndpoints"] == [
        {"port": "ops", "path": "/metrics", "interval": "15s"}
    ]
    assert "endpoints" not in engines
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in rendered.all("Deployment")]
    assert len(pods) == 2
    assert all(selects(engines["selector"], p) or selects(gateway["selector"], p) for p in pods)


def test_no_monitors_by_default(chart: Renderer) -> None:
    rendered = chart.render()
    assert rendered.all("ServiceMonitor") == rendered.all("PodMonitor") == []
    assert [c for c in rendered.all("ConfigMap") if "dashboards" in c["metadata"]["name"]] == []


def test_dashboards_configmap(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-8b.yaml")
    cm = rendered.one("ConfigMap", f"{FULLNAME}-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(cm["data"]) == ["engines.json", "gateway.json"]
    for name, text in cm["data"].items():
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())


def _exprs(name: str) -> str:
    board = json.loads((CHART / "dashboards" / name).read_text())
    return "\n".join(t["expr"] for p in board["panels"] for t in p["targets"])


@pytest.mark.parametrize("metric", GATEWAY_METRICS)
def test_gateway_dashboard_shows(metric: str) -> None:
    assert re.search(rf"\b{re.escape(metric)}(_bucket)?\b", _exprs("gateway.json"))


@pytest.mark.parametrize("metric", ENGINE_METRICS)
def test_engine_dashboard_shows(metric: str) -> None:
    assert metric in _exprs("engines.json")


def test_dashboards_are_well_formed() -> None:
    for name in ("gateway.json", "engines.json"):
        board = json.loads((CHART / "dashboards" / name).read_text())
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        assert board["uid"] and board["title"].startswith("Serving")
        assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])


def test_circuit_panel_maps_the_three_states() -> None:
    board = json.loads((CHART / "dashboards" / "gateway.json").read_text())
    panel = next(p for p in board["panels"] if "serving_circuit_state" in p["targets"][0]["expr"])
    options = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: v["text"] for k, v in options.items()} == {
        "0": "closed",
        "1": "half-open",
        "2": "open",
    }


def test_notes_explain_both_dialects(helm_bin: str) -> None:
    proc = run_helm(
        "install",
        RELEASE,
        str(CHART),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "-f",
        str(CHART / "examples" / "gateway-hosted.yaml"),
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert f"port-forward svc/{FULLNAME}-gateway 8000:8000" in notes
    assert "/v1/chat/completions" in notes and "/v1/messages" in notes
    assert "anthropic-version: 2023-06-01" in notes
    assert '"model": "claude-sonnet-4-5"' in notes
    assert "get secret serving-client-keys" in notes
    assert f"helm test {RELEASE}" in notes


def test_helm_test_pod_calls_models_and_both_dialects(chart: Renderer) -> None:
    pod = chart.render().one("Pod", f"{FULLNAME}-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GATEWAY"] == f"http://{FULLNAME}-gateway:8000"
    assert env["MODEL"] == "llama-3.1-8b"
    script = container["command"][-1]
    for path in ("/v1/models", "/v1/chat/completions", "/v1/messages"):
        assert f'"$GATEWAY{path}"' in script
    assert "curl -fsS" in script and "anthropic-version" in script
    assert pod["spec"]["restartPolicy"] == "Never"


def test_annotation_discovery(chart: Renderer) -> None:
    """monitoring.kind annotations: prometheus.io/* on the gateway and engine pods, no monitor."""
    rendered = chart.render(values={"monitoring": {"kind": "annotations"}})
    assert rendered.all("ServiceMonitor") == rendered.all("PodMonitor") == []
    # The gateway is scraped on its ops port, the engines on their API port.
    for name, port in ((f"{FULLNAME}-gateway", "9090"), (f"{FULLNAME}-llama-8b", "8000")):
        annotations = rendered.one("Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port
        assert annotations["prometheus.io/path"] == "/metrics"
    plain = chart.render().one("Deployment", f"{FULLNAME}-llama-8b")["spec"]["template"]
    assert "annotations" not in plain["metadata"]
