"""Human-readable rendering of plans (the `--json` form is `Plan.model_dump_json`)."""

from __future__ import annotations

from serving.catalog.modules import GIB, weight_rows
from serving.catalog.planner import Layout, Plan, Setup
from serving.catalog.profiles import Precision, Profile


def _rows(plan: Plan) -> list[tuple[str, str]]:
    mem = plan.memory_per_gpu
    layout = f"TP {plan.tensor_parallel} x PP {plan.pipeline_parallel}"
    if plan.replicas > 1:
        layout += f", {plan.replicas} replicas"
    context = f"{plan.max_model_len:,}"
    if plan.context_reduced:
        context += f" (reduced from {plan.requested_context:,})"
    quant = plan.quantization or "checkpoint as published"
    if plan.allow_deprecated_quantization:
        quant += ", deprecated method allowed"
    batch = f"{plan.assumed_max_num_seqs} seqs / {plan.assumed_max_num_batched_tokens:,} tokens"
    batch += "" if plan.max_num_seqs or plan.max_num_batched_tokens else " (vLLM default)"
    return [
        ("hardware", f"{plan.nodes} node(s) x {plan.count}x {plan.gpu}"),
        ("precision", f"{plan.precision.upper()} weights ({quant})"),
        ("kv cache dtype", plan.kv_cache_dtype),
        ("layout", layout),
        ("max model len", context),
        ("gpu memory utilization", f"{plan.gpu_memory_utilization:.2f}"),
        ("batch limits", batch),
        ("cuda graphs", "off (--enforce-eager)" if plan.enforce_eager else "on"),
        ("per GPU: total / budget", f"{mem.total_gib:.2f} / {mem.budget_gib:.2f} GiB (PyTorch)"),
        ("per GPU: weights", f"{mem.weights_gib:.2f} GiB"),
        (
            "per GPU: overhead",
            f"{mem.overhead_gib:.2f} GiB (activations {mem.activations_gib:.2f}, non-torch "
            f"{mem.non_torch_gib:.2f}, cuda graphs {mem.cuda_graphs_gib:.2f})",
        ),
        ("per GPU: kv cache", f"{mem.kv_cache_gib:.2f} GiB (safety reserve {mem.reserve_gib:.2f})"),
        ("kv cache per token", f"{plan.kv_bytes_per_token // 1024} KiB (whole model)"),
        (
            "kv cache capacity",
            f"{plan.kv_cache_tokens:,} tokens per replica as vLLM should report it; "
            f"{plan.kv_cache_tokens_planned:,} planned",
        ),
        ("full-context sequences", f"{plan.full_context_sequences} at once"),
        (
            "decode floor (batch 1)",
            f"{plan.decode_ms_per_token_floor} ms/token "
            f"(≤ {plan.decode_tokens_per_s_ceiling} tokens/s per stream)",
        ),
    ]


def render_plan(plan: Plan) -> str:
    verdict = "FITS" if plan.fits else "DOES NOT FIT"
    lines = [f"{plan.model} on {plan.nodes * plan.count}x {plan.gpu}: {verdict}"]
    if plan.fits:
        rows = _rows(plan)
        width = max(len(key) for key, _ in rows)
        lines += [f"  {key:<{width}}  {value}" for key, value in rows]
    else:
        lines.append(f"  {plan.reason}")
    lines += [f"  note: {note}" for note in plan.notes]
    if plan.layouts:
        lines.append(f"  layouts ranked by {plan.objective}:")
        lines += [f"    {_layout_line(layout)}" for layout in plan.layouts]
    if plan.alternatives:
        lines.append(f"  smallest setups that serve {plan.requested_context:,} tokens:")
        lines += [f"    - {setup.describe()}" for setup in plan.alternatives]
    return "\n".join(lines)


def _layout_line(layout: Layout) -> str:
    mark = "*" if layout.chosen else "-"
    context = "full context" if layout.full_context else f"{layout.max_model_len:,} tokens"
    return (
        f"{mark} {layout.describe()}: {layout.kv_cache_tokens:,} KV tokens per replica, "
        f"{layout.full_context_sequences} full-context sequence(s), {context}, "
        f"decode floor {layout.decode_ms_per_token_floor} ms/token"
    )


def render_minimum(model: str, setups: list[Setup]) -> str:
    """One sentence: what the model needs at least, e.g. for a machine without GPUs."""
    if not setups:
        return f"{model} does not fit any setup of up to the largest node count tried"
    options = " or ".join(
        f"{s.nodes * s.count}x {s.gpu}{' over ' + str(s.nodes) + ' nodes' if s.nodes > 1 else ''}"
        f" with {s.precision.upper()}"
        for s in setups
    )
    return f"{model} needs at least {options}"


def module_table(profile: Profile, precision: Precision, tensor_parallel: int) -> str:
    """The weights of `profile` at `precision`, module by module, on one GPU of TP N
    (a markdown table; docs/planner.md carries one per profile)."""
    weights = profile.weights.get(precision)
    rows = weight_rows(
        profile.architecture,
        precision,
        weights,
        tensor_parallel=tensor_parallel,
        rope_positions=profile.native_context,
    )
    lines = [
        f"| module | parameters | bytes each | total GB | per GPU at TP {tensor_parallel}, GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.params:,} | {row.bytes_per_param} | "
            f"{row.total_bytes / 1e9:.2f} | {row.per_gpu_bytes / GIB:.2f} |"
        )
    total = sum(r.total_bytes for r in rows)
    per_gpu = sum(r.per_gpu_bytes for r in rows)
    lines.append(f"| **all** | | | **{total / 1e9:.2f}** | **{per_gpu / GIB:.2f}** |")
    return "\n".join(lines)
