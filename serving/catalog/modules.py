"""Weight bytes per module, from the architecture and the checkpoint's per-module precision.

An FP8 checkpoint is not 1 byte per parameter: vLLM keeps the embeddings, the LM head, norms, the
MoE router and the rotary cache in 16 bits whatever the checkpoint does, and some checkpoints keep
more (Meta's 405B FP8 keeps every attention projection and the first and last layer in BF16).
`weight_rows` lists each part with its parameters and its bytes on the heaviest GPU of a layout;
docs/planner.md prints these tables for every profile.

Sharding follows vLLM: tensor parallelism splits every linear layer, the embeddings and the LM
head; K/V projections are replicated once TP exceeds the KV heads; pipeline stages take the
layers as vLLM's get_pp_indices does (extra layers go to the stages before the last), the first
stage holds the embeddings and the last the LM head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.catalog.profiles import Architecture, Precision, Weights

GIB = 1 << 30
# 16-bit parts (activation dtype). Norms, router and rotary cache are 16-bit in every checkpoint.
HALF = 2


@dataclass(frozen=True)
class Row:
    """One part of the model: parameters in total and bytes on the heaviest GPU."""

    name: str
    params: int
    bytes_per_param: int
    per_gpu_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.params * self.bytes_per_param


@dataclass(frozen=True)
class _Shape:
    """Per-layer parameter counts."""

    q_o: int
    k_v: int
    mlp: int
    router: int
    norms: int


def _shape(arch: Architecture) -> _Shape:
    q_o = 2 * arch.hidden_size * arch.attention_heads * arch.head_dim
    k_v = 2 * arch.hidden_size * arch.kv_heads * arch.head_dim
    experts = arch.experts or 1
    router = arch.hidden_size * experts if arch.experts else 0
    norms = 2 * arch.hidden_size
    if arch.intermediate_size is not None:
        mlp = experts * 3 * arch.hidden_size * arch.intermediate_size
    else:
        # Without the MLP width, the MLP is whatever the published total leaves.
        rest = round(arch.params_total_b * 1e9) - embedding_params(arch) * (
            1 if arch.tie_word_embeddings else 2
        )
        mlp = max(0, rest // arch.layers - q_o - k_v - router - norms)
    return _Shape(q_o=q_o, k_v=k_v, mlp=mlp, router=router, norms=norms)


def embedding_params(arch: Architecture) -> int:
    return arch.vocab_size * arch.hidden_size


def stage_layers(layers: int, pipeline_parallel: int) -> list[range]:
    """The layers of each pipeline stage, as vLLM's get_pp_indices assigns them."""
    parts = [layers // pipeline_parallel] * pipeline_parallel
    for i in range(2, layers % pipeline_parallel + 2):
        parts[-i] += 1
    starts = [sum(parts[:i]) for i in range(pipeline_parallel)]
    return [range(s, s + n) for s, n in zip(starts, parts, strict=True)]


def _linear_bytes(
    precision: Precision, weights: Weights | None, layer: int, arch: Architecture
) -> tuple[int, int]:
    """(attention, mlp) bytes per parameter of one layer."""
    if precision == "bf16":
        return HALF, HALF
    keep = set(weights.bf16_modules) if weights is not None else {"embeddings", "lm_head"}
    whole_layer = (layer == 0 and "first_layer" in keep) or (
        layer == arch.layers - 1 and "last_layer" in keep
    )
    attention = HALF if whole_layer or "attention" in keep else 1
    return attention, HALF if whole_layer else 1


def _layer_classes(
    precision: Precision, weights: Weights | None, layers: range, arch: Architecture
) -> dict[tuple[int, int], int]:
    """How many layers of a stage have each (attention, mlp) bytes per parameter: only the first
    and the last layer can differ from the rest."""
    classes: dict[tuple[int, int], int] = {}
    edges = [i for i in {0, arch.layers - 1} if i in layers]
    for i in edges:
        key = _linear_bytes(precision, weights, i, arch)
        classes[key] = classes.get(key, 0) + 1
    middle = len(layers) - len(edges)
    if middle:
        inner = next(i for i in layers if i not in edges)
        key = _linear_bytes(precision, weights, inner, arch)
        classes[key] = classes.get(key, 0) + middle
    return classes


def _edge_bytes(precision: Precision, weights: Weights | None, part: str) -> int:
    if precision == "bf16":
        return HALF
    keep = set(weights.bf16_modules) if weights is not None else {"embeddings", "lm_head"}
    return HALF if part in keep else 1


def weight_rows(
    arch: Architecture,
    precision: Precision,
    weights: Weights | None = None,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    rope_positions: int = 0,
) -> list[Row]:
    """Each part of the model with its bytes on the heaviest GPU of a TP x PP layout."""
    shape = _shape(arch)
    tp = tensor_parallel
    kv_share = max(1, arch.kv_heads // tp) / arch.kv_heads  # replicated past kv_heads
    stages = stage_layers(arch.layers, pipeline_parallel)
    # Per stage, per part: bytes on one GPU of that stage.
    per_stage: list[dict[str, float]] = []
    totals: dict[str, tuple[int, int]] = {}

    def add(stage: dict[str, float], name: str, params: int, bpp: int, share: float) -> None:
        stage[name] = stage.get(name, 0) + params * bpp * share
        count, _ = totals.get(name, (0, bpp))
        totals[name] = (count + params, bpp)

    for index, layers in enumerate(stages):
        stage: dict[str, float] = {}
        if index == 0:
            bpp = _edge_bytes(precision, weights, "embeddings")
            add(stage, "embeddings", embedding_params(arch), bpp, 1 / tp)
        for (attn_b, mlp_b), count in _layer_classes(precision, weights, layers, arch).items():
            tag = "first/last layer " if precision == "fp8" and mlp_b == HALF else ""
            add(stage, f"{tag}attention q,o", shape.q_o * count, attn_b, 1 / tp)
            add(stage, f"{tag}attention k,v", shape.k_v * count, attn_b, kv_share)
            add(
                stage,
                f"{tag}{'experts' if arch.experts else 'mlp'}",
                shape.mlp * count,
                mlp_b,
                1 / tp,
            )
            if shape.router:
                add(stage, "router", shape.router * count, HALF, 1)
            add(stage, "norms", shape.norms * count, HALF, 1)
        if index == len(stages) - 1:
            add(stage, "final norm", arch.hidden_size, HALF, 1)
            if not arch.tie_word_embeddings or pipeline_parallel > 1:
                bpp = _edge_bytes(precision, weights, "lm_head")
                add(stage, "lm_head", embedding_params(arch), bpp, 1 / tp)
        if rope_positions:
            # One cos/sin cache (max positions x head_dim, 16-bit) per GPU, shared by all layers.
            stage["rotary cache"] = rope_positions * arch.head_dim * HALF
        per_stage.append(stage)
    heaviest = max(per_stage, key=lambda s: sum(s.values()))
    rows = [
        Row(name, params, bpp, math.ceil(heaviest.get(name, 0)))
        for name, (params, bpp) in totals.items()
    ]
    if rope_positions:
        rows.append(
            Row(
                "rotary cache",
                rope_positions * arch.head_dim,
                HALF,
                rope_positions * arch.head_dim * HALF,
            )
        )
    return rows


def weight_bytes_per_gpu(
    arch: Architecture,
    precision: Precision,
    weights: Weights | None = None,
    *,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    rope_positions: int = 0,
) -> int:
    rows = weight_rows(
        arch,
        precision,
        weights,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        rope_positions=rope_positions,
    )
    return sum(r.per_gpu_bytes for r in rows)


def total_weight_bytes(
    arch: Architecture, precision: Precision, weights: Weights | None = None
) -> int:
    """The whole checkpoint in memory (one copy, no rotary cache)."""
    return sum(r.total_bytes for r in weight_rows(arch, precision, weights))


def active_weight_bytes(
    arch: Architecture, precision: Precision, weights: Weights | None = None
) -> int:
    """Bytes read per token at batch 1: an MoE reads only its active experts."""
    rows = weight_rows(arch, precision, weights)
    total = sum(r.total_bytes for r in rows)
    if not arch.experts or not arch.experts_active:
        return total
    experts = sum(r.total_bytes for r in rows if r.name.endswith("experts"))
    return total - experts + experts * arch.experts_active // arch.experts
