"""What vLLM takes from a GPU's budget besides weights and KV cache, fitted to published figures.

vLLM (v1 engine) sizes the KV cache at start as

    KV = total x gpu_memory_utilization - weights - activation peak - non-torch - CUDA graphs

where `total` is what PyTorch reports, the activation peak is measured by a dummy forward pass of
`max_num_batched_tokens` tokens plus a dummy sampler pass over `max_num_seqs` sequences, non-torch
memory is NCCL/custom all-reduce buffers and allocator slack (it grows with TP), and vLLM 0.32
also subtracts its estimate of CUDA-graph memory (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1)
unless the engine runs eager. The constants below are fitted to the startup logs in
/work/shared/reference/planner-calibration.md (tests/catalog/calibration.yaml keeps them as
regression fixtures); docs/planner.md shows the fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serving.catalog.gpus import GIB, Gpu
from serving.catalog.profiles import Architecture

Generation = Literal["v0.6", "v0.11", "v0.32"]
CURRENT: Generation = "v0.32"  # the vLLM the engine extra pins

# The sampler's dummy pass holds about nine float32 vocab-sized tensors per sequence at its peak
# (logits, probabilities, sorted values and their int64 indices for top-k/top-p). Fitted: 8B on
# H100 with 1,024 sequences (row 1: 4.76 GiB peak) and on A100 with 256 (row 5: 1.28 GiB in all).
SAMPLER_FLOAT32_COPIES = 9.0
# The forward pass of one chunked-prefill step: residual + attention output (2 x hidden) and the
# MLP's gate/up output (its share of the intermediate width), 16-bit, per token in the step.
FORWARD_HIDDEN_COPIES = 2
# vLLM 0.32's CUDA-graph estimate for the default capture sizes (no published figure yet for
# 0.32; vLLM logs for Llama-class models report 0.3-1.0 GiB): the cautious end minus a little.
CUDA_GRAPHS_BYTES = int(0.75 * GIB)
# Kept free on every GPU beyond the estimate, so an error in it cannot turn a "fits" into an
# engine that refuses to start (calibration row 8): a fixed part, more than three times the
# model's worst optimistic miss over the fixtures (0.14 GiB, row 7), plus a share of the overhead
# estimate, whose parts (CUDA graphs, non-torch memory at large TP) have the fewest data points.
RESERVE_FIXED_BYTES = GIB // 2
RESERVE_OVERHEAD_SHARE = 0.10


@dataclass(frozen=True)
class NonTorch:
    """Memory outside PyTorch's allocator: per GPU, by tensor-parallel size (GiB)."""

    single: float
    pair: float
    per_extra_peer: float

    def bytes(self, peers: int) -> int:
        if peers <= 1:
            return int(self.single * GIB)
        return int((self.pair + self.per_extra_peer * (peers - 2)) * GIB)


# Fitted per generation. v0.6: rows 2 (TP 1: 1.86 GiB), 3 (TP 2: 3.58 GiB logged) and 9 (TP 8:
# 5.68 GiB logged, less the activation peak). v0.11 and later: row 1 (TP 1: 0.13 GiB) and row 7
# (TP 2: 0.38 GiB); no later figure at TP 8, so the v0.6 growth per extra peer is kept.
NON_TORCH: dict[Generation, NonTorch] = {
    "v0.6": NonTorch(single=1.86, pair=3.60, per_extra_peer=0.17),
    "v0.11": NonTorch(single=0.13, pair=0.38, per_extra_peer=0.17),
    "v0.32": NonTorch(single=0.13, pair=0.38, per_extra_peer=0.17),
}
GRAPHS_COUNTED: dict[Generation, bool] = {"v0.6": False, "v0.11": False, "v0.32": True}


@dataclass(frozen=True)
class Batch:
    """The scheduler limits that size the activation peak."""

    max_num_seqs: int
    max_num_batched_tokens: int
    # Which of the two the user or the profile set (the launcher passes only those).
    seqs_set: bool = False
    tokens_set: bool = False


def default_batch(gpu: Gpu, generation: Generation = CURRENT) -> Batch:
    """vLLM's defaults for the OpenAI server (EngineArgs.get_batch_defaults in 0.32)."""
    if generation == "v0.6":
        return Batch(max_num_seqs=256, max_num_batched_tokens=2048)
    memory = gpu.torch_total_gib
    if generation == "v0.32" and memory >= 160:
        return Batch(max_num_seqs=1024, max_num_batched_tokens=16384)
    if memory >= 70 and "a100" not in gpu.id:
        return Batch(max_num_seqs=1024, max_num_batched_tokens=8192)
    return Batch(max_num_seqs=256, max_num_batched_tokens=2048)


def resolve_batch(
    gpu: Gpu,
    max_num_seqs: int | None,
    max_num_batched_tokens: int | None,
    generation: Generation = CURRENT,
) -> Batch:
    default = default_batch(gpu, generation)
    return Batch(
        max_num_seqs=max_num_seqs or default.max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens or default.max_num_batched_tokens,
        seqs_set=max_num_seqs is not None,
        tokens_set=max_num_batched_tokens is not None,
    )


@dataclass(frozen=True)
class Overhead:
    """Bytes per GPU that are neither weights nor KV cache."""

    activations: int
    non_torch: int
    cuda_graphs: int

    @property
    def total(self) -> int:
        return self.activations + self.non_torch + self.cuda_graphs

    @property
    def reserve(self) -> int:
        """The safety reserve the planner keeps on top of this overhead."""
        return RESERVE_FIXED_BYTES + int(RESERVE_OVERHEAD_SHARE * self.total)


def activation_peak(arch: Architecture, batch: Batch, tensor_parallel: int) -> int:
    sampler = SAMPLER_FLOAT32_COPIES * batch.max_num_seqs * arch.vocab_size * 4
    intermediate = (arch.intermediate_size or 4 * arch.hidden_size) * (arch.experts_active or 1)
    per_token = FORWARD_HIDDEN_COPIES * arch.hidden_size + intermediate // tensor_parallel
    forward = batch.max_num_batched_tokens * per_token * 2
    return int(sampler + forward)


def overhead(
    arch: Architecture,
    batch: Batch,
    *,
    tensor_parallel: int,
    pipeline_parallel: int = 1,
    enforce_eager: bool = False,
    generation: Generation = CURRENT,
) -> Overhead:
    graphs = 0 if enforce_eager or not GRAPHS_COUNTED[generation] else CUDA_GRAPHS_BYTES
    # Pipeline stages talk point to point; their buffers are counted like one more peer.
    peers = tensor_parallel + (1 if pipeline_parallel > 1 else 0)
    return Overhead(
        activations=activation_peak(arch, batch, tensor_parallel),
        non_torch=NON_TORCH[generation].bytes(peers),
        cuda_graphs=graphs,
    )
