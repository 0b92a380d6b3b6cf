"""Engine autoscaling: KEDA ScaledObjects on vLLM's queue (waking from zero on the gateway's
fallback rate) and HPAs through prometheus-adapter. CRDs: kubernetes-validate cannot check the
ScaledObject, so its fields are checked here."""

from __future__ import annotations

from tests.helm.chartkit import FULLNAME, NAMESPACE, Renderer

MISTRAL = f"{FULLNAME}-mistral-7b"
MIXTRAL = f"{FULLNAME}-mixtral"
SCRAPED = {"kind": "ServiceMonitor"}


def test_keda_scaled_object_scales_to_zero(chart: Renderer) -> None:
    rendered = chart.render("mistral-7b.yaml")
    scaled = rendered.one("ScaledObject", MISTRAL)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": MISTRAL,
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 3)
    assert spec["cooldownPeriod"] >= 600  # reloading a model takes minutes: do not flap
    queue, wake = spec["triggers"]
    assert queue["type"] == wake["type"] == "prometheus"
    assert queue["metadata"]["query"] == (
        f'sum(vllm:num_requests_waiting{{model_name="mistral-7b",namespace="{NAMESPACE}"}})'
    )
    assert queue["metadata"]["threshold"] == "5"
    assert 'serving_fallbacks_total{route="mistral-7b"}' in wake["metadata"]["query"]
    assert wake["metadata"]["activationThreshold"] == "0"
    assert all(t["metadata"]["serverAddress"].startswith("http") for t in spec["triggers"])
    assert all(isinstance(v, str) for t in spec["triggers"] for v in t["metadata"].values())
    deployment = rendered.one("Deployment", MISTRAL)
    assert "replicas" not in deployment["spec"]  # KEDA owns it


def test_keda_without_scale_to_zero_has_no_wake_trigger(chart: Renderer) -> None:
    values = {
        "models": [
            {
                "name": "m",
                "profile": "llama-3.1-8b",
                "autoscaling": {"enabled": True, "maxReplicas": 4},
            }
        ],
        "weightsCache": {"mode": "shared"},
        "monitoring": SCRAPED,
    }
    scaled = chart.render(values=values).one("ScaledObject", f"{FULLNAME}-m")
    assert scaled["spec"]["minReplicaCount"] == 1
    assert [t["name"] for t in scaled["spec"]["triggers"]] == ["queue"]


def test_hpa_on_queue_depth(chart: Renderer) -> None:
    rendered = chart.render("mixtral-8x7b.yaml")
    hpa = rendered.one("HorizontalPodAutoscaler", MIXTRAL)
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": MIXTRAL,
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    metric = spec["metrics"][0]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    assert "replicas" not in rendered.one("Deployment", MIXTRAL)["spec"]
    assert rendered.all("ScaledObject") == []


def test_multinode_autoscaling_targets_the_leaderworkerset(chart: Renderer) -> None:
    values = {
        "models": [
            {
                "name": "big",
                "profile": "llama-3.1-405b",
                "variant": "bf16",
                "autoscaling": {"enabled": True, "maxReplicas": 2},
            }
        ],
        "monitoring": SCRAPED,
    }
    rendered = chart.render("llama-3.1-405b-bf16-multinode.yaml", values=values)
    ref = rendered.one("ScaledObject", f"{FULLNAME}-big")["spec"]["scaleTargetRef"]
    assert ref == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": f"{FULLNAME}-big",
    }
    assert "replicas" not in rendered.one("LeaderWorkerSet", f"{FULLNAME}-big")["spec"]


def test_no_autoscaler_by_default(chart: Renderer) -> None:
    rendered = chart.render()
    assert rendered.all("ScaledObject") == []
    assert rendered.names("HorizontalPodAutoscaler") == [f"{FULLNAME}-gateway"]
    assert rendered.one("Deployment", f"{FULLNAME}-llama-8b")["spec"]["replicas"] == 1
