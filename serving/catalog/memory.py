"""Memory arithmetic for one GPU of a tensor/pipeline-parallel layout (docs/planner.md).

Per GPU, vLLM's budget is `total x gpu_memory_utilization`, with the total PyTorch reports. Out of
it come the GPU's share of the weights (serving.catalog.modules), the activation peak, non-torch
memory and CUDA graphs (serving.catalog.overhead); the rest is the KV cache. The planner keeps a
safety reserve on top, so the KV it plans with is a little less than vLLM's figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.catalog.gpus import Gpu
from serving.catalog.modules import active_weight_bytes, weight_bytes_per_gpu
from serving.catalog.overhead import (
    CURRENT,
    Batch,
    Generation,
    Overhead,
    overhead,
)
from serving.catalog.profiles import Architecture, KvCacheDtype, Precision, Profile

GIB = 1 << 30
KV_BYTES: dict[KvCacheDtype, int] = {"auto": 2, "fp8": 1}
# vLLM allocates the KV cache in blocks of this many tokens.
BLOCK_TOKENS = 16


def kv_bytes_per_token(arch: Architecture, kv_cache_dtype: KvCacheDtype = "auto") -> int:
    """KV cache of one token, whole model: 2 (K and V) x layers x KV heads x head dim x bytes.

    `auto` stores the KV cache in the activation dtype (BF16: 2 bytes).
    """
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_BYTES[kv_cache_dtype]


def weight_bytes(profile: Profile, precision: Precision, *, active_only: bool = False) -> int:
    """The whole model's weights (per-module precision); `active_only`: read per token."""
    weights = profile.weights.get(precision)
    if active_only:
        return active_weight_bytes(profile.architecture, precision, weights)
    return weight_bytes_per_gpu(profile.architecture, precision, weights)


@dataclass(frozen=True)
class GpuMemory:
    """How one GPU's memory is spent under a layout (bytes)."""

    total: int
    budget: int
    weights: int
    overhead: Overhead
    kv_per_token: int

    @property
    def reserve(self) -> int:
        return self.overhead.reserve

    @property
    def kv_space(self) -> int:
        """vLLM's KV cache size (what its startup log reports)."""
        return max(0, self.budget - self.weights - self.overhead.total)

    @property
    def kv_tokens(self) -> int:
        """Tokens of KV cache vLLM will report for the replica (whole blocks)."""
        blocks = self.kv_space // (self.kv_per_token * BLOCK_TOKENS)
        return blocks * BLOCK_TOKENS

    @property
    def planned_tokens(self) -> int:
        """Tokens the planner counts on: the KV cache less the safety reserve."""
        return max(0, self.kv_space - self.reserve) // self.kv_per_token


def layout_memory(
    profile: Profile,
    gpu: Gpu,
    *,
    utilization: float,
    precision: Precision,
    kv_cache_dtype: KvCacheDtype,
    tensor_parallel: int,
    pipeline_parallel: int,
    batch: Batch,
    enforce_eager: bool = False,
    generation: Generation = CURRENT,
) -> GpuMemory:
    arch = profile.architecture
    # TP splits KV heads across GPUs; past kv_heads each GPU keeps one (replicated) head.
    heads_per_gpu = max(1, arch.kv_heads // tensor_parallel)
    layers_per_gpu = math.ceil(arch.layers / pipeline_parallel)
    kv_per_token = 2 * layers_per_gpu * heads_per_gpu * arch.head_dim * KV_BYTES[kv_cache_dtype]
    weights = weight_bytes_per_gpu(
        arch,
        precision,
        profile.weights.get(precision),
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        rope_positions=profile.native_context,
    )
    return GpuMemory(
        total=gpu.usable_bytes,
        budget=math.ceil(gpu.usable_bytes * utilization),
        weights=weights,
        overhead=overhead(
            arch,
            batch,
            tensor_parallel=tensor_parallel,
            pipeline_parallel=pipeline_parallel,
            enforce_eager=enforce_eager,
            generation=generation,
        ),
        kv_per_token=kv_per_token,
    )


def valid_tensor_parallel(arch: Architecture, size: int) -> bool:
    """vLLM shards attention heads evenly; KV heads are split or replicated, never cut."""
    if arch.attention_heads % size:
        return False
    return arch.kv_heads % size == 0 or size % arch.kv_heads == 0
