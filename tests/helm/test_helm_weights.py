"""Examples that start: every engine has a way to get its weights (a pre-fetch from a mirror or
proxy the NetworkPolicy lets through, or a pre-populated cache), the hf-token Secret is mandatory
only where a gated model downloads, and autoscaled engines have a metrics source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from serving.catalog.profiles import load_profiles
from tests.helm.chartkit import (
    EXAMPLES,
    FULLNAME,
    Obj,
    Renderer,
    arg_value,
    container,
    engine_workloads,
    env_of,
    example_files,
    pod_specs,
    selects,
    server_args,
)

GATED = {w.repo: p.gated for p in load_profiles().values() for w in p.weights.values()}


def _values(example: str) -> Obj:
    loaded: Obj = yaml.safe_load((EXAMPLES / example).read_text()) or {}
    return loaded


def _examples_where(pred: Any) -> list[str]:
    return [e for e in example_files() if pred(_values(e))]


def _denies_egress(values: Obj) -> bool:
    return bool(values.get("networkPolicy", {}).get("engines", {}).get("denyEgress"))


def _autoscaled(values: Obj) -> bool:
    return any((m.get("autoscaling") or {}).get("enabled") for m in values.get("models", []))


def _fetcher(spec: Obj) -> Obj | None:
    found = [c for c in spec.get("initContainers", []) if c["name"] == "fetch-weights"]
    return found[0] if found else None


def _egress_allows(policy: Obj, port: int) -> bool:
    """Whether the policy lets engines reach some CIDR on this TCP port."""
    for rule in policy["spec"].get("egress", []):
        cidrs = [peer for peer in rule.get("to", []) if "ipBlock" in peer]
        ports = {p["port"] for p in rule.get("ports", []) if p.get("protocol") == "TCP"}
        if cidrs and port in ports:
            return True
    return False


def _allows_dns(policy: Obj) -> bool:
    return any(
        {p["port"] for p in rule.get("ports", [])} == {53} for rule in policy["spec"]["egress"]
    )


def test_there_are_egress_deny_and_autoscaled_examples() -> None:
    assert len(_examples_where(_denies_egress)) >= 2
    assert len(_examples_where(_autoscaled)) >= 2


@pytest.mark.parametrize("example", _examples_where(_denies_egress))
def test_egress_deny_examples_have_a_weight_source(chart: Renderer, example: str) -> None:
    rendered = chart.render(example)
    for workload in engine_workloads(rendered):
        policy = rendered.one("NetworkPolicy", workload["metadata"]["name"])
        for role, _, spec in pod_specs(workload):
            engine_env = env_of(container(spec))
            # Never a download inside the engine: the weights are there before vLLM starts.
            assert engine_env["HF_HUB_OFFLINE"]["value"] == "1"
            assert "HF_ENDPOINT" not in engine_env and "HTTPS_PROXY" not in engine_env
            fetcher = _fetcher(spec)
            if role == "worker":
                assert fetcher is None  # the leader fetches once into the shared claim
                continue
            if fetcher is None:
                # A pre-populated cache: a claim that outlives the release, never an emptyDir.
                weights = next(v for v in spec["volumes"] if v["name"] == "weights")
                assert "persistentVolumeClaim" in weights
                continue
            env = env_of(fetcher)
            source = (env.get("HTTPS_PROXY") or env.get("HF_ENDPOINT") or {}).get("value")
            assert source, f"{example}: the pre-fetch has neither a mirror nor a proxy"
            url = urlsplit(source)
            port = url.port or (443 if url.scheme == "https" else 80)
            assert _egress_allows(policy, port), f"{example}: {source} is not let through"
            host = url.hostname or ""
            if not host.replace(".", "").isdigit():
                assert _allows_dns(policy), f"{example}: {host} cannot be resolved"


def _fetch_mode(workload: Obj) -> str:
    specs = [spec for _, _, spec in pod_specs(workload)]
    if any(_fetcher(spec) for spec in specs):
        return "prefetch"
    return "none" if "HF_HUB_OFFLINE" in env_of(container(specs[0])) else "engine"


@pytest.mark.parametrize("example", example_files())
def test_hf_token_is_optional_unless_a_gated_model_downloads(chart: Renderer, example: str) -> None:
    for workload in engine_workloads(chart.render(example)):
        repo = arg_value(server_args(workload), "--model") or ""
        # A model without a profile is ungated unless its values say `gated: true`.
        needed = GATED.get(repo, False) and _fetch_mode(workload) != "none"
        for _, _, spec in pod_specs(workload):
            fetcher = _fetcher(spec)
            for c in [container(spec), *([fetcher] if fetcher else [])]:
                token = env_of(c).get("HF_TOKEN")
                if token is None:
                    assert not needed, f"{example}: {repo} needs a token"
                    continue
                optional = token["valueFrom"]["secretKeyRef"].get("optional", False)
                assert optional is not needed, f"{example} {c['name']}"


def test_ungated_model_starts_without_the_secret(chart: Renderer) -> None:
    rendered = chart.render("custom-model.yaml")
    spec = rendered.one("Deployment", f"{FULLNAME}-qwen-7b")["spec"]["template"]["spec"]
    ref = env_of(container(spec))["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hf-token", "key": "token", "optional": True}
    gated = chart.render(values={"models": [{"name": "m", "hfRepo": "org/x", "gated": True}]})
    spec = gated.one("Deployment", f"{FULLNAME}-m")["spec"]["template"]["spec"]
    ref = env_of(container(spec))["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "hf-token", "key": "token"}


@pytest.mark.parametrize("example", _examples_where(_autoscaled))
def test_autoscaled_examples_have_a_metrics_source(chart: Renderer, example: str) -> None:
    """Something makes Prometheus scrape the engines (the queue metric) and the gateway (the
    fallback rate that wakes a scaled-to-zero engine)."""
    rendered = chart.render(example)
    monitors = rendered.all("ServiceMonitor") + rendered.all("PodMonitor")
    assert monitors, f"{example}: nothing scrapes the release"
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in rendered.all("ScaledObject")}
    scaled |= {
        o["spec"]["scaleTargetRef"]["name"]
        for o in rendered.all("HorizontalPodAutoscaler")
        if o["spec"]["scaleTargetRef"]["name"] != f"{FULLNAME}-gateway"
    }
    assert scaled
    picked: set[str] = set()  # across monitors: the gateway has its own (its ops port)
    for monitor in monitors:
        if monitor["kind"] == "ServiceMonitor":
            targets = {
                s["metadata"]["name"]: s["metadata"]["labels"] for s in rendered.all("Service")
            }
        else:
            targets = {
                w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
                for w in rendered.all("Deployment")
            }
        picked |= {
            n for n, labels in targets.items() if selects(monitor["spec"]["selector"], labels)
        }
    assert scaled <= picked and f"{FULLNAME}-gateway" in picked


# The pre-fetch script, run for real with huggingface_hub against a pre-populated cache.


def _fetch_container(chart: Renderer) -> Obj:
    rendered = chart.render("llama-3.1-405b-fp8.yaml")
    spec = rendered.one("Deployment", f"{FULLNAME}-llama-405b")["spec"]["template"]["spec"]
    fetcher = _fetcher(spec)
    assert fetcher is not None
    return fetcher


def _run_fetch(fetcher: Obj, hf_home: Path, repo: str) -> subprocess.CompletedProcess[str]:
    env = {k: v["value"] for k, v in env_of(fetcher).items() if "value" in v}
    env.update(
        HF_HOME=str(hf_home),
        SERVING_WEIGHTS_REPO=repo,
        HF_HUB_OFFLINE="1",  # tests reach no network: the cache must satisfy the request
        PATH=os.environ["PATH"],
    )
    command = [sys.executable, *fetcher["command"][1:]]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def _cache_snapshot(hf_home: Path, repo: str) -> Path:
    """What a completed download leaves in the hub cache (refs/main -> snapshots/<commit>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return snapshot


def test_prefetch_script_records_a_complete_download(chart: Renderer, tmp_path: Path) -> None:
    fetcher = _fetch_container(chart)
    assert fetcher["command"][:2] == ["python3", "-c"]
    assert env_of(fetcher)["HF_ENDPOINT"]["value"] == "https://hf-mirror.internal.example"
    assert json.loads(env_of(fetcher)["SERVING_WEIGHTS_PATTERNS"]["value"])
    repo = "example/tiny"
    snapshot = _cache_snapshot(tmp_path, repo)
    first = _run_fetch(fetcher, tmp_path, repo)
    assert first.returncode == 0, first.stderr
    assert f"fetched into {snapshot}" in first.stdout
    marker = tmp_path / "serving-prefetch" / "example--tiny@main.done"
    assert marker.read_text().strip() == str(snapshot)
    # A restart (or another replica) finds the marker and does not ask the hub again.
    again = _run_fetch(fetcher, tmp_path, repo)
    assert again.returncode == 0 and "already in the cache" in again.stdout


def test_prefetch_script_fails_when_the_weights_cannot_be_fetched(
    chart: Renderer, tmp_path: Path
) -> None:
    proc = _run_fetch(_fetch_container(chart), tmp_path, "example/missing")
    assert proc.returncode != 0
    assert "LocalEntryNotFoundError" in proc.stderr  # huggingface_hub's own refusal
    assert not (tmp_path / "serving-prefetch").exists()  # no marker for a failed download
