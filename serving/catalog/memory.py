"""Memory arithmetic for one GPU of a tensor/pipeline-parallel layout (docs/planner.md).

Per GPU, vLLM's budget is `memory x gpu_memory_utilization`. Out of it come the GPU's share of the
weights, a headroom for the runtime and activations, and what is left holds the KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.catalog.profiles import BYTES_PER_PARAM, Architecture, KvCacheDtype, Precision

GIB = 1 << 30
# CUDA context, cuBLAS workspaces and CUDA graphs, on every GPU.
RUNTIME_OVERHEAD_BYTES = 1 * GIB
# NCCL and custom all-reduce buffers, only when the GPU talks to peers (TP or PP > 1).
COMM_OVERHEAD_BYTES = 1 * GIB
# vLLM profiles a chunked-prefill step of this many tokens to size activation memory.
ACTIVATION_TOKENS = 8192
# Bytes per token per hidden unit in flight during that step (residual, QKV, MLP halves).
ACTIVATION_BYTES_PER_HIDDEN = 24
# The sampler's float32 logits for a full batch of sequences.
SAMPLER_SEQS = 256
KV_BYTES: dict[KvCacheDtype, int] = {"auto": 2, "fp8": 1}


def kv_bytes_per_token(arch: Architecture, kv_cache_dtype: KvCacheDtype = "auto") -> int:
    """KV cache of one token, whole model: 2 (K and V) x layers x KV heads x head dim x bytes.

    `auto` stores the KV cache in the activation dtype (BF16: 2 bytes).
    """
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES[kv_cache_dtype]


def weight_bytes(arch: Architecture, precision: Precision, *, active_only: bool = False) -> int:
    params = arch.params_active_b if active_only else arch.params_total_b
    return int(params * 1e9 * BYTES_PER_PARAM[precision])


def overhead_bytes(arch: Architecture, gpus_per_replica: int) -> int:
    activations = ACTIVATION_TOKENS * arch.hidden_size * ACTIVATION_BYTES_PER_HIDDEN
    logits = SAMPLER_SEQS * arch.vocab_size * 4
    comm = COMM_OVERHEAD_BYTES if gpus_per_replica > 1 else 0
    return RUNTIME_OVERHEAD_BYTES + comm + activations + logits


@dataclass(frozen=True)
class GpuMemory:
    """How one GPU's memory is spent under a layout (bytes)."""

    total: int
    budget: int
    weights: int
    overhead: int
    kv_per_token: int

    @property
    def kv_space(self) -> int:
        return max(0, self.budget - self.weights - self.overhead)

    @property
    def kv_tokens(self) -> int:
        """Tokens of KV cache the replica holds (every GPU holds its slice of each token)."""
        return self.kv_space // self.kv_per_token


def layout_memory(
    arch: Architecture,
    *,
    gpu_memory_bytes: int,
    utilization: float,
    precision: Precision,
    kv_cache_dtype: KvCacheDtype,
    tensor_parallel: int,
    pipeline_parallel: int,
) -> GpuMemory:
    gpus = tensor_parallel * pipeline_parallel
    # TP splits KV heads across GPUs; past kv_heads each GPU keeps one (replicated) head.
    heads_per_gpu = max(1, arch.kv_heads // tensor_parallel)
    layers_per_gpu = math.ceil(arch.layers / pipeline_parallel)
    kv_per_token = 2 * layers_per_gpu * heads_per_gpu * arch.head_dim * KV_BYTES[kv_cache_dtype]
    return GpuMemory(
        total=gpu_memory_bytes,
        budget=int(gpu_memory_bytes * utilization),
        weights=math.ceil(weight_bytes(arch, precision) / gpus),
        overhead=overhead_bytes(arch, gpus),
        kv_per_token=kv_per_token,
    )


def valid_tensor_parallel(arch: Architecture, size: int) -> bool:
    """vLLM shards attention heads evenly; KV heads are split or replicated, never cut."""
    if arch.attention_heads % size:
        return False
    return arch.kv_heads % size == 0 or size % arch.kv_heads == 0
