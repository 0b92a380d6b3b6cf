"""deploy/compose.yaml: valid for `docker-compose config`, one GPU engine from the official vLLM
image, the gateway built from deploy/Dockerfile with its config, Prometheus and Grafana wired up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.gateway.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
CHART_DASHBOARDS = REPO / "helm" / "serving" / "dashboards"


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed: run `bash scripts/ci-system-deps.sh` "
            "(apt-get install docker-compose)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as docker-compose itself resolves it (variables at their defaults)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVING_", "HF_TOKEN"))}
    proc = subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr  # e.g. an unset variable without a default
    data = yaml.safe_load(proc.stdout)
    assert isinstance(data, dict)
    return data


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    """Negative control: `docker-compose config` really validates."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace(
            "    restart: unless-stopped\n", "    restart: 3\n    bogus: 1\n", 1
        )
    )
    proc = subprocess.run(
        [_docker_compose(), "-f", str(broken), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode != 0


def test_services(resolved: dict[str, Any]) -> None:
    assert sorted(resolved["services"]) == ["engine", "gateway", "grafana", "prometheus"]


def test_engine_is_the_official_vllm_image_with_a_gpu(resolved: dict[str, Any]) -> None:
    engine = resolved["services"]["engine"]
    image, tag = engine["image"].split(":")
    assert image == "vllm/vllm-openai" and tag not in ("", "latest")
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"capabilities": ["gpu"], "count": 1, "driver": "nvidia"}]
    assert "--served-model-name=llama-3.1-8b" in engine["command"]
    assert "--no-enable-prefix-caching" not in engine["command"]
    assert engine["ipc"] == "host"
    assert engine["environment"]["HF_HOME"].startswith("/data/")
    assert any(v.endswith(":/data:rw") for v in engine["volumes"])
    assert "ports" not in engine  # only the gateway is published


def test_engine_image_matches_the_chart(resolved: dict[str, Any]) -> None:
    values = yaml.safe_load((REPO / "helm" / "serving" / "values.yaml").read_text())
    image = values["engines"]["image"]
    assert resolved["services"]["engine"]["image"] == f"{image['repository']}:{image['tag']}"


def test_gateway_is_built_and_hardened(resolved: dict[str, Any]) -> None:
    gateway = resolved["services"]["gateway"]
    assert gateway["build"] == {"context": str(REPO), "dockerfile": "deploy/Dockerfile"}
    assert gateway["command"][:3] == ["gateway", "--config", "/etc/serving/gateway.yaml"]
    assert gateway["ports"] == [{"published": 8000, "target": 8000}]
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    assert gateway["user"].split(":")[0] != "0"
    # Start order only: the gateway must serve fallbacks while the engine is still loading.
    assert gateway["depends_on"] == {"engine": {"condition": "service_started"}}
    mount = next(v for v in gateway["volumes"] if v.endswith(":/etc/serving/gateway.yaml:ro"))
    assert Path(mount.split(":")[0]) == DEPLOY / "examples" / "compose-gateway.yaml"


def test_compose_gateway_config_is_valid_and_points_at_the_engine(resolved: dict[str, Any]) -> None:
    settings = load_settings(DEPLOY / "examples" / "compose-gateway.yaml")
    engine = settings.upstream("engine")
    assert engine.base_url == "http://engine:8000/v1" and engine.locality == "local"
    route = settings.route_for("default")
    assert route is not None and [t.upstream for t in route.targets] == ["engine", "anthropic"]
    served = next(
        a for a in resolved["services"]["engine"]["command"] if a.startswith("--served-model-name=")
    )
    assert route.targets[0].model == served.split("=", 1)[1]
    hosted_env = {u.api_key_env for u in settings.upstreams if u.api_key_env}
    assert hosted_env <= set(resolved["services"]["gateway"]["environment"])
    assert settings.server.api_keys_env in resolved["services"]["gateway"]["environment"]


def test_prometheus_scrapes_gateway_and_engine(resolved: dict[str, Any]) -> None:
    prometheus = resolved["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if ":/etc/prometheus/prometheus.yml" in v)
    config = yaml.safe_load(Path(mount.split(":")[0]).read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {"gateway": ["gateway:8000"], "vllm": ["engine:8000"]}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_provisions_the_chart_dashboards(resolved: dict[str, Any]) -> None:
    grafana = resolved["services"]["grafana"]
    mounts = dict(reversed(v.rsplit(":", 2)[:2]) for v in grafana["volumes"] if v.startswith("/"))
    provisioning = Path(mounts["/etc/grafana/provisioning"])
    dashboards = Path(mounts["/etc/grafana/dashboards/serving"])
    # One copy of the dashboards: the chart's (helm cannot package files outside the chart).
    assert dashboards == CHART_DASHBOARDS
    assert sorted(p.name for p in dashboards.glob("*.json")) == ["engines.json", "gateway.json"]
    for board in dashboards.glob("*.json"):
        json.loads(board.read_text())
    provider = yaml.safe_load((provisioning / "dashboards" / "serving.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards/serving"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert datasource["datasources"][0]["type"] == "prometheus"
