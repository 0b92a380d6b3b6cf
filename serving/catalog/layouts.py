"""Layouts of a model on a hardware set, and the objectives that rank them.

A layout is (TP, PP, replicas, weight precision, KV cache dtype). For each one the planner works
out the memory of one GPU, the context it serves and a score under the chosen objective:

- capacity (default): full-context sequences the node(s) hold at once, discounted for tensor
  parallelism: each doubling of TP keeps TP_EFFICIENCY of the per-GPU throughput (all-reduce per
  layer). NVLink 0.7 (reference §3.1 D: 70B FP8 on 2 -> 4 H100 gave 1.30x, Mixtral 1.47x, not 2x);
  PCIe 0.5, so PCIe cards take a large TP only when it holds far more.
- latency: the lowest per-token decode time of one stream (weights read per step, divided by TP,
  with the same discount);
- throughput: aggregate decode tokens/s with every replica running as many full-context sequences
  as its KV cache (and max_num_seqs) allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from serving.catalog.gpus import Gpu
from serving.catalog.memory import GpuMemory, layout_memory, valid_tensor_parallel, weight_bytes
from serving.catalog.overhead import CURRENT, Batch, Generation
from serving.catalog.profiles import KvCacheDtype, Precision, Profile

Objective = Literal["capacity", "latency", "throughput"]
OBJECTIVES: tuple[Objective, ...] = ("capacity", "latency", "throughput")
TP_EFFICIENCY = {"nvlink": 0.7, "pcie": 0.5}
# Pipeline stages across nodes cost little bandwidth but add a bubble per stage.
PP_EFFICIENCY = 0.9
CONTEXT_STEP = 1024


@dataclass(frozen=True)
class Hardware:
    gpu: Gpu
    count: int
    nodes: int


@dataclass(frozen=True)
class Settings:
    """What the user fixed (or the profile set) for every layout."""

    target: int
    concurrency: int
    utilization: float
    batch: Batch
    enforce_eager: bool
    tensor_parallel: int | None = None
    generation: Generation = CURRENT


@dataclass(frozen=True)
class Candidate:
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    precision: Precision
    kv_cache_dtype: KvCacheDtype
    memory: GpuMemory
    max_model_len: int
    target: int
    decode_floor_s: float
    throughput: float

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel

    @property
    def full(self) -> bool:
        return self.max_model_len >= self.target

    @property
    def sequences(self) -> int:
        """Full-context sequences all replicas hold at once (planned, after the reserve)."""
        return self.memory.planned_tokens // self.target * self.replicas

    @property
    def served_sequences(self) -> int:
        """Sequences of the context it serves (the target, or the reduced length)."""
        if self.max_model_len < 1:
            return 0
        return self.memory.planned_tokens // self.max_model_len * self.replicas

    def efficiency(self, gpu: Gpu) -> float:
        tp: float = TP_EFFICIENCY[gpu.interconnect] ** math.log2(self.tensor_parallel)
        return float(tp * PP_EFFICIENCY ** (self.pipeline_parallel - 1))

    def score(self, objective: Objective, gpu: Gpu) -> float:
        eff = self.efficiency(gpu)
        if objective == "capacity":
            return self.sequences * eff
        if objective == "latency":
            return -self.decode_floor_s / eff
        return self.throughput * eff


def shapes(profile: Profile, hardware: Hardware, fixed_tp: int | None) -> list[tuple[int, int]]:
    """(TP, PP) pairs: one node splits by TP and fills the rest with replicas; several nodes
    carry one replica, TP inside a node (NVLink) and PP across nodes."""
    arch = profile.architecture
    if hardware.nodes > 1:
        tp = fixed_tp or hardware.count
        ok = valid_tensor_parallel(arch, tp) and arch.layers >= hardware.nodes
        return [(tp, hardware.nodes)] if ok and tp == hardware.count else []
    sizes = [tp for tp in range(1, hardware.count + 1) if hardware.count % tp == 0]
    if fixed_tp is not None:
        sizes = [tp for tp in sizes if tp == fixed_tp]
    return [(tp, 1) for tp in sizes if valid_tensor_parallel(arch, tp)]


def candidate(
    profile: Profile,
    hardware: Hardware,
    settings: Settings,
    layout: tuple[int, int],
    precision: Precision,
    kv_cache_dtype: KvCacheDtype,
) -> Candidate:
    tp, pp = layout
    memory = layout_memory(
        profile,
        hardware.gpu,
        utilization=settings.utilization,
        precision=precision,
        kv_cache_dtype=kv_cache_dtype,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        batch=settings.batch,
        enforce_eager=settings.enforce_eager,
        generation=settings.generation,
    )
    replicas = hardware.count * hardware.nodes // (tp * pp)
    bandwidth = hardware.gpu.bandwidth_tbps * 1e12
    active = weight_bytes(profile, precision, active_only=True)
    floor = active / (tp * bandwidth)
    return Candidate(
        tensor_parallel=tp,
        pipeline_parallel=pp,
        replicas=replicas,
        precision=precision,
        kv_cache_dtype=kv_cache_dtype,
        memory=memory,
        max_model_len=_max_len(memory, replicas, settings),
        target=settings.target,
        decode_floor_s=floor,
        throughput=_throughput(memory, replicas, settings, active / tp, bandwidth),
    )


def _max_len(memory: GpuMemory, replicas: int, settings: Settings) -> int:
    """The longest context (≤ target) at which the replicas hold `concurrency` sequences."""
    per_replica = math.ceil(settings.concurrency / replicas)
    longest = memory.planned_tokens // per_replica
    if longest >= settings.target:
        return settings.target
    return longest - longest % CONTEXT_STEP if longest >= CONTEXT_STEP else longest


def _throughput(
    memory: GpuMemory, replicas: int, settings: Settings, weights_per_gpu: float, bandwidth: float
) -> float:
    """Decode tokens/s of all replicas, each running the full-context batch its KV holds."""
    batch = min(settings.batch.max_num_seqs, memory.planned_tokens // settings.target)
    if batch < 1:
        return 0.0
    kv_read = batch * settings.target * memory.kv_per_token
    step_s = (weights_per_gpu + kv_read) / bandwidth
    return replicas * batch / step_s


def rank(candidates: list[Candidate], objective: Objective, gpu: Gpu) -> list[Candidate]:
    """Best first; ties go to fewer GPUs per replica (less communication, more replicas)."""
    return sorted(
        candidates,
        key=lambda c: (-c.score(objective, gpu), c.gpus_per_replica, c.precision != "bf16"),
    )
