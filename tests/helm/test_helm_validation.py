"""Bad values fail `helm template` with one message that names every problem."""

from __future__ import annotations

from typing import Any

from tests.helm.chartkit import Renderer

HOSTED = {
    "upstreams": [
        {
            "name": "openai",
            "dialect": "openai",
            "base_url": "https://api.openai.com/v1",
            "locality": "hosted",
            "api_key_env": "OPENAI_API_KEY",
        }
    ]
}


def _model(**fields: Any) -> dict[str, Any]:
    return {"name": "m", "profile": "llama-3.1-8b", **fields}


def test_unknown_profile(chart: Renderer) -> None:
    message = chart.error(values={"models": [{"name": "big", "profile": "llama-3.1-9b"}]})
    assert 'models[0] (big): unknown profile "llama-3.1-9b"' in message
    assert (
        "known profiles: llama-3.1-405b, llama-3.1-70b, llama-3.1-8b, mistral-7b, mixtral-8x7b"
        in message
    )


def test_unknown_variant(chart: Renderer) -> None:
    message = chart.error(values={"models": [_model(profile="llama-3.1-70b", variant="int4")]})
    assert 'profile llama-3.1-70b has no variant "int4"; its variants: fp8' in message


def test_custom_model_needs_a_repo(chart: Renderer) -> None:
    message = chart.error(values={"models": [{"name": "x", "gpusPerPod": 1}]})
    assert "models[0] (x): set a `profile`" in message and "`hfRepo`" in message


def test_tensor_parallel_must_divide_the_gpu_count(chart: Renderer) -> None:
    message = chart.error(values={"models": [_model(gpusPerPod=4, tensorParallel=3)]})
    assert (
        "models[0] (m): tensorParallel * pipelineParallel = 3 does not divide the GPU count 4"
        in message
    )


def test_tensor_parallel_larger_than_the_pod(chart: Renderer) -> None:
    message = chart.error(values={"models": [_model(gpusPerPod=2, tensorParallel=4)]})
    assert "does not divide the GPU count 2" in message


def test_multinode_must_use_all_its_gpus_for_one_copy(chart: Renderer) -> None:
    values = {
        "models": [_model(nodes=2, gpusPerPod=8, tensorParallel=4)],
        "weightsCache": {"mode": "shared"},
    }
    message = chart.error(values=values)
    assert "a multi-node engine (nodes 2) must use exactly its GPUs for one model copy" in message


def test_scale_to_zero_without_a_fallback(chart: Renderer) -> None:
    values = {"models": [_model(autoscaling={"enabled": True, "minReplicas": 0, "maxReplicas": 1})]}
    message = chart.error(values=values)
    assert (
        "models[0] (m): scale to zero (autoscaling.minReplicas 0) needs a fallback target on "
        "every route to this model, but route(s) llama-3.1-8b have no fallback target" in message
    )


def test_scale_to_zero_with_a_fallback_renders(chart: Renderer) -> None:
    values = {
        "models": [
            _model(
                autoscaling={"enabled": True, "minReplicas": 0, "maxReplicas": 1},
                fallbacks=[{"upstream": "openai", "model": "gpt-4o-mini"}],
            )
        ],
        "gateway": HOSTED,
        "monitoring": {"kind": "ServiceMonitor"},
    }
    rendered = chart.render(values=values)
    assert rendered.all("ScaledObject")[0]["spec"]["minReplicaCount"] == 0


def test_scale_to_zero_needs_every_route_to_have_a_fallback(chart: Renderer) -> None:
    values = {
        "models": [
            _model(
                autoscaling={"enabled": True, "minReplicas": 0},
                fallbacks=[{"upstream": "openai", "model": "gpt-4o-mini"}],
            )
        ],
        "gateway": {
            **HOSTED,
            "routes": [{"model": "fast", "targets": [{"upstream": "m", "model": "llama-3.1-8b"}]}],
        },
    }
    message = chart.error(values=values)
    assert "route(s) fast have no fallback target" in message


def test_scale_to_zero_without_any_route(chart: Renderer) -> None:
    values = {
        "models": [_model(route=False, autoscaling={"enabled": True, "minReplicas": 0})],
        "gateway": {
            **HOSTED,
            "routes": [{"model": "x", "targets": [{"upstream": "openai", "model": "gpt-4o"}]}],
        },
    }
    message = chart.error(values=values)
    assert "no gateway route sends traffic to this model" in message


def test_scale_to_zero_needs_keda(chart: Renderer) -> None:
    values = {
        "models": [
            _model(
                autoscaling={"enabled": True, "kind": "hpa", "minReplicas": 0},
                fallbacks=[{"upstream": "openai", "model": "gpt-4o-mini"}],
            )
        ],
        "gateway": HOSTED,
        "weightsCache": {"mode": "shared"},
    }
    message = chart.error(values=values)
    assert "needs autoscaling.kind keda; an HPA cannot scale to zero" in message


def test_replicas_cannot_share_a_readwriteonce_cache(chart: Renderer) -> None:
    message = chart.error(values={"models": [_model(replicas=2)]})
    assert "up to 2 replicas cannot share a ReadWriteOnce weights claim" in message


def test_multinode_needs_a_readwritemany_cache(chart: Renderer) -> None:
    values = {"models": [{"name": "big", "profile": "llama-3.1-405b", "variant": "bf16"}]}
    message = chart.error(values=values)
    assert "a multi-node engine (nodes 2) needs a ReadWriteMany weights cache" in message


def test_route_to_an_unknown_upstream(chart: Renderer) -> None:
    values = {"models": [_model(fallbacks=[{"upstream": "anthropic", "model": "claude"}])]}
    message = chart.error(values=values)
    assert 'route "llama-3.1-8b" targets unknown upstream "anthropic" (known: m)' in message


def test_duplicate_names(chart: Renderer) -> None:
    values = {"models": [_model(), _model(servedName="other")]}
    message = chart.error(values=values)
    assert 'models[1] (m): the name "m" is used by more than one model' in message


def test_gateway_needs_something_to_route(chart: Renderer) -> None:
    message = chart.error(values={"models": []})
    assert "gateway: no routes" in message


def test_every_problem_is_reported_at_once(chart: Renderer) -> None:
    values = {
        "models": [
            {"name": "a", "profile": "nope"},
            _model(name="b", gpusPerPod=3, tensorParallel=2),
        ]
    }
    message = chart.error(values=values)
    assert "invalid values (2 problem(s))" in message
    assert 'models[0] (a): unknown profile "nope"' in message
    assert "models[1] (b): tensorParallel * pipelineParallel = 2 does not divide" in message


DENY = {"engines": {"denyEgress": True, "allowDNS": True, "egressCIDRs": ["10.20.0.0/16"]}}


def test_autoscaling_needs_a_metrics_source(chart: Renderer) -> None:
    values = {
        "models": [_model(autoscaling={"enabled": True, "kind": "hpa"})],
        "weightsCache": {"mode": "shared"},
    }
    message = chart.error(values=values)
    assert (
        "models[0] (m): autoscaling (hpa) scales on vllm:num_requests_waiting from Prometheus, "
        "but monitoring.kind is none, so nothing scrapes the engines" in message
    )
    assert "set monitoring.kind ServiceMonitor or PodMonitor" in message
    for kind in ("ServiceMonitor", "PodMonitor", "annotations"):
        chart.render(values={**values, "monitoring": {"kind": kind}})


def test_keda_needs_a_prometheus_address(chart: Renderer) -> None:
    values = {
        "models": [_model(autoscaling={"enabled": True, "prometheusAddress": ""})],
        "weightsCache": {"mode": "shared"},
        "monitoring": {"kind": "ServiceMonitor"},
    }
    message = chart.error(values=values)
    assert "models[0] (m): autoscaling.prometheusAddress is empty" in message


def test_deny_egress_without_a_weight_source(chart: Renderer) -> None:
    message = chart.error(values={"networkPolicy": {"engines": {"denyEgress": True}}})
    assert (
        "models[0] (llama-8b): networkPolicy.engines.denyEgress blocks the Hugging Face hub, so "
        "weightsCache.fetch engine can never download the weights" in message
    )
    assert "set weightsCache.fetch none with a pre-populated cache" in message


def test_deny_egress_mirror_outside_the_allowed_cidrs(chart: Renderer) -> None:
    values = {
        "networkPolicy": {"engines": {"denyEgress": True, "allowDNS": True}},
        "weightsCache": {"fetch": "prefetch", "hfEndpoint": "https://mirror.internal"},
    }
    message = chart.error(values=values)
    assert (
        "weightsCache.hfEndpoint https://mirror.internal: list the address range of "
        "mirror.internal in networkPolicy.engines.egressCIDRs" in message
    )


def test_deny_egress_proxy_port_must_be_open(chart: Renderer) -> None:
    values = {
        "networkPolicy": DENY,
        "weightsCache": {"fetch": "prefetch", "httpsProxy": "http://10.20.0.5:3128"},
    }
    message = chart.error(values=values)
    assert (
        "weightsCache.httpsProxy http://10.20.0.5:3128 uses port 3128, which "
        "networkPolicy.engines.egressPorts (443) does not open" in message
    )
    deny = {"engines": {**DENY["engines"], "egressPorts": [3128], "allowDNS": False}}
    rendered = chart.render(values={**values, "networkPolicy": deny})
    policy = rendered.one("NetworkPolicy", "rel-serving-llama-8b")
    assert policy["spec"]["egress"][-1]["ports"] == [{"port": 3128, "protocol": "TCP"}]


def test_deny_egress_host_name_needs_dns(chart: Renderer) -> None:
    values = {
        "networkPolicy": {"engines": {**DENY["engines"], "allowDNS": False}},
        "weightsCache": {"hfEndpoint": "https://mirror.internal"},
    }
    message = chart.error(values=values)
    assert (
        "weightsCache.hfEndpoint names the host mirror.internal, which engines cannot resolve "
        "with egress denied: set networkPolicy.engines.allowDNS true" in message
    )


def test_gated_model_that_downloads_needs_the_token(chart: Renderer) -> None:
    values = {"engines": {"hfTokenSecret": {"name": ""}}}
    message = chart.error(values=values)
    assert (
        "models[0] (llama-8b): meta-llama/Llama-3.1-8B-Instruct is gated (accept its licence on "
        "the model page), so downloading it needs a token" in message
    )
    # Pre-populated weights need none, and neither do ungated models.
    chart.render(values={**values, "weightsCache": {"fetch": "none"}})
    ungated = {"name": "m", "hfRepo": "Qwen/Qwen2.5-7B-Instruct"}
    chart.render(values={**values, "models": [ungated]})


def test_scale_to_zero_needs_the_gateway(chart: Renderer) -> None:
    values = {
        "models": [
            _model(
                autoscaling={"enabled": True, "minReplicas": 0},
                fallbacks=[{"upstream": "openai", "model": "gpt-4o-mini"}],
            )
        ],
        "gateway": {**HOSTED, "enabled": False},
        "monitoring": {"kind": "ServiceMonitor"},
        "weightsCache": {"mode": "shared"},
    }
    message = chart.error(values=values)
    assert "scale to zero wakes the engine on the gateway's serving_fallbacks_total" in message


def test_pre_populated_weights_need_a_claim(chart: Renderer) -> None:
    values = {"weightsCache": {"mode": "emptyDir", "fetch": "none"}}
    message = chart.error(values=values)
    assert (
        "models[0] (llama-8b): weightsCache.fetch none reads pre-populated weights, but "
        "weightsCache.mode emptyDir starts every pod with an empty cache" in message
    )
    claim = {"models": [{"name": "llama-8b", "profile": "llama-3.1-8b", "cacheClaim": "w"}]}
    spec = chart.render(values={**values, **claim}).one("Deployment", "rel-serving-llama-8b")
    volumes = spec["spec"]["template"]["spec"]["volumes"]
    weights = next(v for v in volumes if v["name"] == "weights")
    assert weights == {"name": "weights", "persistentVolumeClaim": {"claimName": "w"}}
