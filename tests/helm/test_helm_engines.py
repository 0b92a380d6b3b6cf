"""Engine objects rendered from the example values: GPU counts and parallelism as planned, shm
exactly for multi-GPU pods, probe budgets that grow with the model, and the vLLM flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from serving.catalog.planner import plan
from serving.catalog.profiles import Precision, get_profile
from serving.engine.launcher import build_gpu_command
from tests.helm.chartkit import (
    FULLNAME,
    GIB,
    Obj,
    Renderer,
    arg_value,
    chart_profiles,
    container,
    engine_workloads,
    env_of,
    example_files,
    pod_specs,
    server_args,
)


@dataclass(frozen=True)
class Expected:
    """One row of serving-configs.md §2.1 (the recommended setup per model)."""

    profile: str
    precision: Precision
    gpus_per_pod: int
    nodes: int
    tp: int
    pp: int


# serving-configs.md §2.1: 8B on 1 GPU; 70B BF16 TP4 (FP8 TP2); 405B FP8 TP8 on one 8-GPU node,
# BF16 TP8 x PP2 over two nodes; Mistral 7B on 1 GPU; Mixtral 8x7B TP2.
EXPECTED = {
    "llama-3.1-8b.yaml": Expected("llama-3.1-8b", "bf16", 1, 1, 1, 1),
    "llama-3.1-70b.yaml": Expected("llama-3.1-70b", "bf16", 4, 1, 4, 1),
    "llama-3.1-405b-fp8.yaml": Expected("llama-3.1-405b", "fp8", 8, 1, 8, 1),
    "llama-3.1-405b-bf16-multinode.yaml": Expected("llama-3.1-405b", "bf16", 8, 2, 8, 2),
    "mistral-7b.yaml": Expected("mistral-7b", "bf16", 1, 1, 1, 1),
    "mixtral-8x7b.yaml": Expected("mixtral-8x7b", "bf16", 2, 1, 2, 1),
}
FP8_70B = {"models": [{"name": "llama-70b-fp8", "profile": "llama-3.1-70b", "variant": "fp8"}]}
MIN = 60


def _container(spec: Obj) -> Obj:
    return container(spec)


def _server_args(workload: Obj) -> list[str]:
    return server_args(workload)


def _only_engine(rendered: Any) -> Obj:
    workloads = engine_workloads(rendered)
    assert len(workloads) == 1, [w["metadata"]["name"] for w in workloads]
    return workloads[0]


def _gpus(spec: Obj) -> int:
    res = _container(spec)["resources"]
    limit, request = res["limits"]["nvidia.com/gpu"], res["requests"]["nvidia.com/gpu"]
    assert limit == request
    return int(limit)


def _startup_budget_s(workload: Obj) -> int:
    for role, _, spec in pod_specs(workload):
        if role != "worker":
            probe = _container(spec)["startupProbe"]
            return int(probe["periodSeconds"]) * int(probe["failureThreshold"])
    raise AssertionError("no serving container")


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_gpu_counts_and_parallelism_match_the_reference(chart: Renderer, example: str) -> None:
    want = EXPECTED[example]
    workload = _only_engine(chart.render(example))
    pods = list(pod_specs(workload))
    assert {_gpus(spec) for _, _, spec in pods} == {want.gpus_per_pod}
    args = _server_args(workload)
    assert arg_value(args, "--tensor-parallel-size") == str(want.tp)
    assert arg_value(args, "--pipeline-parallel-size") == (str(want.pp) if want.pp > 1 else None)
    if want.nodes > 1:
        assert workload["kind"] == "LeaderWorkerSet"
        assert workload["spec"]["leaderWorkerTemplate"]["size"] == want.nodes
    else:
        assert workload["kind"] == "Deployment"


def _planned(example_values: str | None, chart: Renderer) -> tuple[Obj, Expected]:
    if example_values is None:
        return _only_engine(chart.render(values=FP8_70B)), Expected(
            "llama-3.1-70b", "fp8", 2, 1, 2, 1
        )
    return _only_engine(chart.render(example_values)), EXPECTED[example_values]


@pytest.mark.parametrize("example", [*sorted(EXPECTED), None], ids=lambda e: e or "70b-fp8")
def test_engine_settings_match_the_planner(chart: Renderer, example: str | None) -> None:
    workload, want = _planned(example, chart)
    result = plan(
        want.profile, "h100", want.gpus_per_pod, nodes=want.nodes, precision=want.precision
    )
    assert result.fits, result.reason
    args = _server_args(workload)
    assert (result.tensor_parallel, result.pipeline_parallel) == (want.tp, want.pp)
    assert arg_value(args, "--tensor-parallel-size") == str(result.tensor_parallel)
    assert int(arg_value(args, "--pipeline-parallel-size") or 1) == result.pipeline_parallel
    assert int(arg_value(args, "--data-parallel-size") or 1) == result.replicas
    assert arg_value(args, "--max-model-len") == str(result.max_model_len)
    assert (arg_value(args, "--kv-cache-dtype") or "auto") == result.kv_cache_dtype
    assert arg_value(args, "--quantization") == result.quantization
    assert float(arg_value(args, "--gpu-memory-utilization") or 0) == pytest.approx(
        result.gpu_memory_utilization
    )


def _flags(argv: list[str] | tuple[str, ...]) -> dict[str, str]:
    """--flag value pairs (value "" for switches) from a vLLM command line."""
    out: dict[str, str] = {}
    args = list(argv)
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else "--"
            out[arg] = "" if nxt.startswith("--") else nxt
    return out


@pytest.mark.parametrize("example", [*sorted(EXPECTED), None], ids=lambda e: e or "70b-fp8")
def test_engine_command_matches_the_launcher(chart: Renderer, example: str | None) -> None:
    """The chart runs the same vLLM flags as `serving launch` for the same plan (except where it
    listens)."""
    workload, want = _planned(example, chart)
    profile = get_profile(want.profile)
    result = plan(profile, "h100", want.gpus_per_pod, nodes=want.nodes, precision=want.precision)
    spec = build_gpu_command(profile, result, python="python3", host="0.0.0.0", port=8000)
    ignored = {"--gpu-memory-utilization"}
    chart_flags = {k: v for k, v in _flags(_server_args(workload)).items() if k not in ignored}
    launcher_flags = {k: v for k, v in _flags(spec.argv).items() if k not in ignored}
    assert chart_flags == launcher_flags
    assert float(_flags(_server_args(workload))["--gpu-memory-utilization"]) == pytest.approx(
        float(_flags(spec.argv)["--gpu-memory-utilization"])
    )
    assert _server_args(workload)[:3] == list(spec.argv[:3])  # python3 -m <server module>
    # The chart's budget also covers the download the launcher does before starting vLLM.
    assert _startup_budget_s(workload) >= spec.startup_budget_s


@pytest.mark.parametrize("example", example_files())
def test_shm_is_mounted_exactly_when_tensor_parallel(chart: Renderer, example: str) -> None:
    for workload in engine_workloads(chart.render(example)):
        tp = int(arg_value(_server_args(workload), "--tensor-parallel-size") or 0)
        for _, _, spec in pod_specs(workload):
            shm = [v for v in spec["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
            mounts = [m for m in _container(spec)["volumeMounts"] if m["mountPath"] == "/dev/shm"]
            if tp > 1:
                assert len(shm) == 1 and shm[0]["emptyDir"]["sizeLimit"]
                assert [m["name"] for m in mounts] == [shm[0]["name"]]
            else:
                assert shm == [] and mounts == []


def test_examples_cover_engines_with_and_without_tensor_parallel(chart: Renderer) -> None:
    tps = {
        int(arg_value(_server_args(w), "--tensor-parallel-size") or 0)
        for e in EXPECTED
        for w in engine_workloads(chart.render(e))
    }
    assert 1 in tps and max(tps) > 1


def test_probe_budgets_grow_with_model_size(chart: Renderer) -> None:
    budget = {e: _startup_budget_s(_only_engine(chart.render(e))) for e in EXPECTED}
    assert budget["llama-3.1-8b.yaml"] >= 10 * MIN
    assert budget["mistral-7b.yaml"] >= 10 * MIN
    assert budget["mixtral-8x7b.yaml"] > budget["llama-3.1-8b.yaml"]
    assert budget["llama-3.1-70b.yaml"] >= 30 * MIN
    assert budget["llama-3.1-70b.yaml"] > budget["mixtral-8x7b.yaml"]
    assert budget["llama-3.1-405b-fp8.yaml"] >= 60 * MIN
    assert budget["llama-3.1-405b-fp8.yaml"] > budget["llama-3.1-70b.yaml"]
    assert budget["llama-3.1-405b-bf16-multinode.yaml"] >= budget["llama-3.1-405b-fp8.yaml"]


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_probes_all_use_health(chart: Renderer, example: str) -> None:
    workload = _only_engine(chart.render(example))
    for role, _, spec in pod_specs(workload):
        container = _container(spec)
        probes = ("startupProbe", "readinessProbe", "livenessProbe")
        if role == "worker":
            # Ray workers serve nothing: liveness follows the Ray head, readiness the leader's
            # vLLM, and no startup probe (an init container waits for the head instead).
            assert "ports" not in container and "startupProbe" not in container
            assert "ray health-check" in container["livenessProbe"]["exec"]["command"][-1]
            assert ":8000/health" in container["readinessProbe"]["exec"]["command"][-1]
            continue
        for probe in probes:
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        # A liveness probe must never kill a loading pod: the startup probe gates it.
        assert _startup_budget_s(workload) > 10 * container["livenessProbe"]["periodSeconds"]


def test_engine_defaults(chart: Renderer) -> None:
    rendered = chart.render()
    workload = rendered.one("Deployment", f"{FULLNAME}-llama-8b")
    assert workload["spec"]["strategy"] == {"type": "Recreate"}
    spec = workload["spec"]["template"]["spec"]
    assert "runtimeClassName" not in spec
    container = _container(spec)
    image, tag = container["image"].split(":")
    assert image == "vllm/vllm-openai"
    assert tag.startswith("v") and tag != "latest"
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    cache_mount = next(m for m in container["volumeMounts"] if m["name"] == "weights")
    assert env["HF_HOME"]["value"].startswith(cache_mount["mountPath"] + "/")
    assert env["VLLM_NO_USAGE_STATS"]["value"] == "1"
    tolerations = spec["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expr = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert expr["key"] == "nvidia.com/gpu.product" and "NVIDIA-H100-80GB-HBM3" in expr["values"]


def test_pod_template_has_no_chart_version_label(chart: Renderer) -> None:
    """A chart upgrade alone must not restart (and re-load) GPU engines."""
    workload = chart.render().one("Deployment", f"{FULLNAME}-llama-8b")
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels


def test_runtime_class_and_gpu_affinity_are_configurable(chart: Renderer) -> None:
    values = {"engines": {"runtimeClassName": "nvidia", "gpuAffinity": "preferred"}}
    spec = chart.render(values=values).one("Deployment", f"{FULLNAME}-llama-8b")["spec"]
    pod = spec["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    node_affinity = pod["affinity"]["nodeAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in node_affinity
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100
    off = chart.render(values={"engines": {"gpuAffinity": "off"}})
    assert (
        "affinity" not in off.one("Deployment", f"{FULLNAME}-llama-8b")["spec"]["template"]["spec"]
    )


@pytest.mark.parametrize("example", example_files())
def test_prefix_caching_is_never_switched_off(chart: Renderer, example: str) -> None:
    rendered = chart.render(example)
    assert "--no-enable-prefix-caching" not in rendered.text
    assert "--no-enable-chunked-prefill" not in rendered.text


def test_mistral_uses_its_own_tokenizer_and_format(chart: Renderer) -> None:
    args = _server_args(_only_engine(chart.render("mistral-7b.yaml")))
    for flag in ("--tokenizer-mode", "--config-format", "--load-format"):
        assert arg_value(args, flag) == "mistral"
    assert arg_value(args, "--tool-call-parser") == "mistral"


def test_weights_cache_per_model_claim(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-70b.yaml")
    pvc = rendered.one("PersistentVolumeClaim", f"{FULLNAME}-llama-70b-weights")
    size = pvc["spec"]["resources"]["requests"]["storage"]
    assert size == chart_profiles()["llama-3.1-70b"]["cacheSize"]
    # Room for the BF16 checkpoint (70.6 B parameters x 2 bytes) and a partial second download.
    assert int(size.removesuffix("Gi")) * GIB > 70.6e9 * 2 * 1.1
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = rendered.one("Deployment", f"{FULLNAME}-llama-70b")["spec"]["template"]["spec"]
    weights = next(v for v in spec["volumes"] if v["name"] == "weights")
    assert weights["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_weights_cache_shared_existing_claim(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-405b-bf16-multinode.yaml")
    assert rendered.all("PersistentVolumeClaim") == []
    for _, _, spec in pod_specs(_only_engine(rendered)):
        weights = next(v for v in spec["volumes"] if v["name"] == "weights")
        assert weights["persistentVolumeClaim"]["claimName"] == "model-weights-rwx"


def test_weights_cache_shared_created_claim_is_rwx(chart: Renderer) -> None:
    pvc = chart.render("mistral-7b.yaml").one("PersistentVolumeClaim", f"{FULLNAME}-weights")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "nfs-rwx"


def test_multinode_engine_is_a_leaderworkerset(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-405b-bf16-multinode.yaml")
    name = f"{FULLNAME}-llama-405b-bf16"
    lws = rendered.one("LeaderWorkerSet", name)
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    spec = lws["spec"]
    assert spec["replicas"] == 1
    assert spec["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
    }
    lwt = spec["leaderWorkerTemplate"]
    assert lwt["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = lwt["leaderTemplate"]["spec"]["containers"][0]["command"][-1]
    worker = lwt["workerTemplate"]["spec"]["containers"][0]["command"][-1]
    assert "ray start --head" in leader and "--distributed-executor-backend' 'ray'" in leader
    assert ">= 16" in leader  # waits for both nodes' GPUs before starting vLLM
    assert "${LWS_LEADER_ADDRESS}:6379" in worker and "--block" in worker
    service = rendered.one("Service", name)
    assert service["spec"]["selector"]["serving.dev/role"] == "leader"
    assert lwt["leaderTemplate"]["metadata"]["labels"]["serving.dev/role"] == "leader"
    assert lwt["workerTemplate"]["metadata"]["labels"]["serving.dev/role"] == "worker"
    assert rendered.all("Deployment") == [rendered.one("Deployment", f"{FULLNAME}-gateway")]


def test_fully_custom_model(chart: Renderer) -> None:
    values = {
        "models": [
            {
                "name": "qwen",
                "hfRepo": "Qwen/Qwen2.5-7B-Instruct",
                "gpusPerPod": 2,
                "maxModelLen": 16384,
                "toolCallParser": "hermes",
            }
        ]
    }
    rendered = chart.render(values=values)
    workload = rendered.one("Deployment", f"{FULLNAME}-qwen")
    args = _server_args(workload)
    assert arg_value(args, "--model") == "Qwen/Qwen2.5-7B-Instruct"
    assert arg_value(args, "--served-model-name") == "qwen"
    assert arg_value(args, "--tensor-parallel-size") == "1"
    assert arg_value(args, "--data-parallel-size") == "2"  # 2 GPUs, TP 1: two engine copies
    assert arg_value(args, "--tool-call-parser") == "hermes"
    spec = workload["spec"]["template"]["spec"]
    assert _gpus(spec) == 2
    assert "affinity" not in spec  # no GPU products known: no node affinity
    # Two GPU processes in one pod still share memory through NCCL: shm follows the GPU count.
    assert [v["name"] for v in spec["volumes"]] == ["weights", "dshm"]


def test_model_override_replaces_a_profile_field(chart: Renderer) -> None:
    values = {"models": [{"name": "m", "profile": "llama-3.1-8b", "toolCallParser": ""}]}
    args = _server_args(chart.render(values=values).one("Deployment", f"{FULLNAME}-m"))
    assert "--tool-call-parser" not in args and "--enable-auto-tool-choice" not in args


def test_engine_pdb_selects_engine_pods(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-70b.yaml")
    pdb = rendered.one("PodDisruptionBudget", f"{FULLNAME}-llama-70b")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = rendered.one("Deployment", f"{FULLNAME}-llama-70b")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert all(pod_labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


def test_engine_tuning_values_reach_vllm(chart: Renderer) -> None:
    """The planner's and launcher's tuning options are chart values too."""
    tuned = {
        "name": "m",
        "profile": "llama-3.1-70b",
        "tensorParallel": 8,
        "gpusPerPod": 8,
        "gpuMemoryUtilization": 0.85,
        "maxNumSeqs": 64,
        "maxNumBatchedTokens": 8192,
        "enforceEager": True,
    }
    args = _server_args(chart.render(values={"models": [tuned]}).one("Deployment", f"{FULLNAME}-m"))
    assert arg_value(args, "--tensor-parallel-size") == "8"
    assert arg_value(args, "--data-parallel-size") is None
    assert arg_value(args, "--gpu-memory-utilization") == "0.85"
    assert arg_value(args, "--max-num-seqs") == "64"
    assert arg_value(args, "--max-num-batched-tokens") == "8192"
    assert "--enforce-eager" in args
    plain = _server_args(
        chart.render("llama-3.1-70b.yaml").one("Deployment", f"{FULLNAME}-llama-70b")
    )
    assert not {"--max-num-seqs", "--max-num-batched-tokens", "--enforce-eager"} & set(plain)


def test_profile_env_and_engine_args_reach_the_pod(chart: Renderer) -> None:
    values = {
        "models": [
            {
                "name": "m",
                "profile": "llama-3.1-8b",
                "engineArgs": ["--allow-deprecated-quantization"],
                "env": {"VLLM_ATTENTION_BACKEND": "FLASHINFER"},
            }
        ]
    }
    spec = chart.render(values=values).one("Deployment", f"{FULLNAME}-m")["spec"]["template"]
    args = _container(spec["spec"])["command"]
    assert "--allow-deprecated-quantization" in args
    env = env_of(_container(spec["spec"]))
    assert env["VLLM_ATTENTION_BACKEND"]["value"] == "FLASHINFER"


def _multinode(chart: Renderer, values: Obj | None = None) -> dict[str, Obj]:
    rendered = chart.render("llama-3.1-405b-bf16-multinode.yaml", values=values)
    return {role: spec for role, _, spec in pod_specs(_only_engine(rendered))}


def test_multinode_leader_fetches_once_and_workers_wait(chart: Renderer) -> None:
    pods = _multinode(chart)
    assert [c["name"] for c in pods["leader"]["initContainers"]] == ["fetch-weights"]
    (wait,) = pods["worker"]["initContainers"]
    assert wait["name"] == "wait-for-ray-head"
    assert 'ray health-check --address "${LWS_LEADER_ADDRESS}:6379"' in wait["command"][-1]
    claims = {
        role: next(v for v in spec["volumes"] if v["name"] == "weights")["persistentVolumeClaim"]
        for role, spec in pods.items()
    }
    assert claims["leader"] == claims["worker"] == {"claimName": "model-weights-rwx"}
    for spec in pods.values():
        assert env_of(_container(spec))["HF_HUB_OFFLINE"]["value"] == "1"


def test_multinode_network_defaults(chart: Renderer) -> None:
    for role, spec in _multinode(chart).items():
        env = {k: v["value"] for k, v in env_of(_container(spec)).items() if "value" in v}
        assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "eth0", role
        assert env["NCCL_DEBUG"] == "WARN"
        assert "NCCL_IB_DISABLE" not in env  # auto: NCCL uses RDMA devices when the pod has them


def test_multinode_network_settings_are_values(chart: Renderer) -> None:
    multi = {
        "rayPort": 6380,
        "socketIfname": "",
        "ncclTransport": "socket",
        "ncclDebug": "INFO",
        "env": [{"name": "NCCL_IB_HCA", "value": "mlx5"}],
    }
    pods = _multinode(chart, {"engines": {"multiNode": multi}})
    for spec in pods.values():
        env = {k: v["value"] for k, v in env_of(_container(spec)).items() if "value" in v}
        assert "NCCL_SOCKET_IFNAME" not in env and "GLOO_SOCKET_IFNAME" not in env
        assert (env["NCCL_IB_DISABLE"], env["NCCL_DEBUG"], env["NCCL_IB_HCA"]) == (
            "1",
            "INFO",
            "mlx5",
        )
    assert "ray start --head --port=6380" in _container(pods["leader"])["command"][-1]
    worker = _container(pods["worker"])
    assert "${LWS_LEADER_ADDRESS}:6380" in worker["command"][-1]
    assert "${LWS_LEADER_ADDRESS}:6380" in worker["livenessProbe"]["exec"]["command"][-1]
    ib = _multinode(chart, {"engines": {"multiNode": {"ncclTransport": "ib"}}})
    assert env_of(_container(ib["worker"]))["NCCL_IB_DISABLE"]["value"] == "0"


def test_single_node_engines_get_no_multinode_settings(chart: Renderer) -> None:
    spec = chart.render("llama-3.1-70b.yaml").one("Deployment", f"{FULLNAME}-llama-70b")
    env = env_of(_container(spec["spec"]["template"]["spec"]))
    assert not [k for k in env if k.startswith(("NCCL_", "GLOO_"))]
