"""The planner: will this model fit this hardware, and with which vLLM settings?

Public API (docs/planner.md):

    plan(profile, gpu, count=1, nodes=1, context=None, concurrency=1,
         precision=None, kv_cache_dtype=None) -> Plan
    minimum_setups(profile, gpu, context=None) -> list[Setup]
    kv_bytes_per_token(architecture, kv_cache_dtype="auto") -> int

`count` is GPUs per node; `nodes` > 1 means one replica spread over nodes with pipeline
parallelism (TP = count inside a node, PP = nodes across them). On one node the planner picks
the smallest tensor-parallel size that fits and fills the remaining GPUs with replicas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from serving.catalog.errors import CatalogError
from serving.catalog.gpus import Gpu, get_gpu
from serving.catalog.memory import (
    GIB,
    GpuMemory,
    kv_bytes_per_token,
    layout_memory,
    valid_tensor_parallel,
    weight_bytes,
)
from serving.catalog.profiles import KvCacheDtype, Precision, Profile, get_profile

__all__ = ["MIN_USEFUL_CONTEXT", "Plan", "Setup", "kv_bytes_per_token", "minimum_setups", "plan"]

# The planner shortens the context to make a model fit, but not below this: a shorter window
# is no use for chat or agent traffic, so such a setup is reported as not fitting.
MIN_USEFUL_CONTEXT = 16384
CONTEXT_STEP = 1024
MAX_SUGGESTED_NODES = 4


class Setup(BaseModel):
    """A hardware setup that fits, as suggested when the requested one does not."""

    model_config = ConfigDict(frozen=True)

    gpu: str
    count: int
    nodes: int
    precision: Precision
    tensor_parallel: int
    pipeline_parallel: int
    max_model_len: int

    @property
    def total_gpus(self) -> int:
        return self.count * self.nodes

    def describe(self) -> str:
        where = f"{self.count}x {self.gpu}"
        if self.nodes > 1:
            where = f"{self.nodes} nodes x {where}"
        layout = f"TP {self.tensor_parallel}"
        if self.pipeline_parallel > 1:
            layout += f" x PP {self.pipeline_parallel}"
        return f"{where} with {self.precision.upper()} ({layout})"


class MemoryPerGpu(BaseModel):
    """GiB, for one GPU of a replica."""

    model_config = ConfigDict(frozen=True)

    total_gib: float
    budget_gib: float
    weights_gib: float
    overhead_gib: float
    kv_cache_gib: float


class Plan(BaseModel):
    """The planner's answer; when `fits` is False, `reason` says why and `alternatives` what
    fits instead."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    count: int
    nodes: int
    fits: bool
    reason: str | None
    precision: Precision
    quantization: str | None
    kv_cache_dtype: KvCacheDtype
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    requested_context: int
    max_model_len: int
    context_reduced: bool
    concurrency: int
    gpu_memory_utilization: float
    kv_bytes_per_token: int
    kv_cache_tokens: int
    full_context_sequences: int
    memory_per_gpu: MemoryPerGpu
    decode_ms_per_token_floor: float
    decode_tokens_per_s_ceiling: float
    notes: tuple[str, ...] = ()
    alternatives: tuple[Setup, ...] = ()

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


@dataclass(frozen=True)
class _Request:
    profile: Profile
    gpu: Gpu
    count: int
    nodes: int
    target: int
    concurrency: int
    precision: Precision
    kv_cache_dtype: KvCacheDtype


@dataclass(frozen=True)
class _Candidate:
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    memory: GpuMemory
    max_model_len: int

    @property
    def sequences(self) -> int:
        per_replica = self.memory.kv_tokens // self.max_model_len if self.max_model_len else 0
        return per_replica * self.replicas


def plan(
    profile: Profile | str,
    gpu: Gpu | str,
    count: int = 1,
    nodes: int = 1,
    context: int | None = None,
    concurrency: int = 1,
    precision: Precision | None = None,
    kv_cache_dtype: KvCacheDtype | None = None,
) -> Plan:
    """Plan `profile` on `nodes` x `count` GPUs of type `gpu`, serving `context` tokens per
    sequence (default: the profile's default context) to `concurrency` sequences at once."""
    request, notes = _request(profile, gpu, count, nodes, context, concurrency, precision)
    request, kv_notes = _settle_kv_dtype(request, kv_cache_dtype)
    notes += kv_notes
    candidates = _candidates(request)
    chosen = _choose(request, candidates)
    if chosen is None:
        # Explain with the most favourable layout: most KV room, then most GPUs per replica.
        best = max(candidates, key=_headroom) if candidates else None
        return _build(request, best, notes, fits=False)
    if chosen.max_model_len < request.target:
        notes.append(
            f"context reduced from {request.target:,} to {chosen.max_model_len:,} tokens: "
            "the KV cache cannot hold more"
        )
    if request.nodes > 1 and _fits_one_node(request):
        notes.append("the model fits on one node: prefer replicas over pipeline parallelism")
    return _build(request, chosen, notes, fits=True)


def _request(
    profile: Profile | str,
    gpu: Gpu | str,
    count: int,
    nodes: int,
    context: int | None,
    concurrency: int,
    precision: Precision | None,
) -> tuple[_Request, list[str]]:
    profile = get_profile(profile) if isinstance(profile, str) else profile
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    if min(count, nodes, concurrency, 1 if context is None else context) < 1:
        raise CatalogError("count, nodes, concurrency and context must be at least 1")
    if count > gpu.max_per_node:
        raise CatalogError(f"{gpu.id} nodes hold at most {gpu.max_per_node} GPUs (got {count})")
    notes: list[str] = []
    target = context or profile.default_context
    if target > profile.native_context:
        notes.append(f"context capped at the native {profile.native_context:,} tokens")
        target = profile.native_context
    chosen = precision or profile.precision
    profile.weights_for(chosen)  # raises a clear error when the profile lacks that precision
    if chosen == "fp8" and not gpu.fp8:
        notes.append(f"{gpu.id} has no FP8 tensor cores: FP8 weights run weight-only (slower)")
    request = _Request(
        profile, gpu, count, nodes, target, concurrency, chosen, profile.kv_cache_dtype
    )
    return request, notes


def _settle_kv_dtype(
    request: _Request, requested: KvCacheDtype | None
) -> tuple[_Request, list[str]]:
    kv = requested or request.kv_cache_dtype
    if kv == "fp8" and not request.gpu.fp8:
        note = f"{request.gpu.id} has no FP8 support for the KV cache: using the model dtype"
        return dataclasses.replace(request, kv_cache_dtype="auto"), [note]
    return dataclasses.replace(request, kv_cache_dtype=kv), []


def _layouts(request: _Request) -> list[tuple[int, int]]:
    arch = request.profile.architecture
    if request.nodes > 1:
        ok = valid_tensor_parallel(arch, request.count) and arch.layers >= request.nodes
        return [(request.count, request.nodes)] if ok else []
    sizes = [tp for tp in range(1, request.count + 1) if request.count % tp == 0]
    return [(tp, 1) for tp in sizes if valid_tensor_parallel(arch, tp)]


def _candidates(request: _Request) -> list[_Candidate]:
    found = []
    for tp, pp in _layouts(request):
        memory = layout_memory(
            request.profile.architecture,
            gpu_memory_bytes=request.gpu.memory_bytes,
            utilization=request.profile.engine.gpu_memory_utilization,
            precision=request.precision,
            kv_cache_dtype=request.kv_cache_dtype,
            tensor_parallel=tp,
            pipeline_parallel=pp,
        )
        replicas = request.count * request.nodes // (tp * pp)
        found.append(_Candidate(tp, pp, replicas, memory, _max_len(request, memory, replicas)))
    return found


def _max_len(request: _Request, memory: GpuMemory, replicas: int) -> int:
    """The longest context (≤ target) at which the replicas hold `concurrency` sequences."""
    per_replica = math.ceil(request.concurrency / replicas)
    longest = memory.kv_tokens // per_replica
    if longest >= request.target:
        return request.target
    return longest - longest % CONTEXT_STEP if longest >= CONTEXT_STEP else longest


def _choose(request: _Request, candidates: list[_Candidate]) -> _Candidate | None:
    full = [c for c in candidates if c.max_model_len >= request.target]
    if full:
        return full[0]  # smallest tensor-parallel size: the rest of the GPUs become replicas
    floor = min(request.target, MIN_USEFUL_CONTEXT)
    reduced = [c for c in candidates if c.max_model_len >= floor]
    return max(reduced, key=lambda c: c.max_model_len) if reduced else None


def _headroom(candidate: _Candidate) -> tuple[int, int]:
    return candidate.memory.kv_tokens, candidate.tensor_parallel * candidate.pipeline_parallel


def _fits_one_node(request: _Request) -> bool:
    single = dataclasses.replace(request, count=request.gpu.max_per_node, nodes=1)
    return any(c.max_model_len >= request.target for c in _candidates(single))


def _build(request: _Request, chosen: _Candidate | None, notes: list[str], *, fits: bool) -> Plan:
    profile, arch = request.profile, request.profile.architecture
    tp, pp = (chosen.tensor_parallel, chosen.pipeline_parallel) if chosen else (request.count, 1)
    replicas = chosen.replicas if chosen else 1
    memory = chosen.memory if chosen else None
    kv_per_token = kv_bytes_per_token(arch, request.kv_cache_dtype)
    max_len = chosen.max_model_len if chosen and fits else 0
    floor_s = weight_bytes(arch, request.precision, active_only=True) / (
        tp * request.gpu.bandwidth_tbps * 1e12
    )
    reason = None if fits else _reason(request, chosen)
    return Plan(
        model=profile.name,
        gpu=request.gpu.id,
        count=request.count,
        nodes=request.nodes,
        fits=fits,
        reason=reason,
        precision=request.precision,
        quantization=profile.weights_for(request.precision).quantization,
        kv_cache_dtype=request.kv_cache_dtype,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        replicas=replicas,
        requested_context=request.target,
        max_model_len=max_len,
        context_reduced=fits and max_len < request.target,
        concurrency=request.concurrency,
        gpu_memory_utilization=profile.engine.gpu_memory_utilization,
        kv_bytes_per_token=kv_per_token,
        kv_cache_tokens=memory.kv_tokens if memory else 0,
        full_context_sequences=chosen.sequences if chosen and fits else 0,
        memory_per_gpu=_memory_report(memory),
        decode_ms_per_token_floor=round(floor_s * 1e3, 2),
        decode_tokens_per_s_ceiling=round(1 / floor_s, 1),
        notes=tuple(notes),
        alternatives=() if fits else tuple(_alternatives(request)),
    )


def _memory_report(memory: GpuMemory | None) -> MemoryPerGpu:
    if memory is None:
        return MemoryPerGpu(
            total_gib=0, budget_gib=0, weights_gib=0, overhead_gib=0, kv_cache_gib=0
        )
    return MemoryPerGpu(
        total_gib=round(memory.total / GIB, 2),
        budget_gib=round(memory.budget / GIB, 2),
        weights_gib=round(memory.weights / GIB, 2),
        overhead_gib=round(memory.overhead / GIB, 2),
        kv_cache_gib=round(memory.kv_space / GIB, 2),
    )


def _reason(request: _Request, best: _Candidate | None) -> str:
    where = f"{request.nodes * request.count}x {request.gpu.id}"
    name = f"{request.profile.name} {request.precision.upper()}"
    if best is None:
        return f"{name}: no valid tensor/pipeline layout on {where}"
    weights_gib = best.memory.weights / GIB
    budget_gib = best.memory.budget / GIB
    if best.memory.kv_tokens == 0:
        return (
            f"{name} on {where}: {weights_gib:.1f} GiB of weights per GPU leave no KV cache "
            f"room in the {budget_gib:.1f} GiB budget"
        )
    floor = min(request.target, MIN_USEFUL_CONTEXT)
    return (
        f"{name} on {where}: {weights_gib:.1f} GiB of weights per GPU leave KV cache room for "
        f"{best.memory.kv_tokens:,} tokens, short of {floor:,} x {request.concurrency} sequence(s)"
    )


def minimum_setups(
    profile: Profile | str, gpu: Gpu | str, context: int | None = None
) -> list[Setup]:
    """The smallest setup of `gpu` that serves the full context, for each precision the profile
    offers (the recommended one first)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    order = [profile.precision, *(p for p in profile.weights if p != profile.precision)]
    found = []
    for precision in order:
        setup = _smallest(profile, gpu, precision, context)
        if setup is not None:
            found.append(setup)
    return found


def _smallest(
    profile: Profile, gpu: Gpu, precision: Precision, context: int | None
) -> Setup | None:
    counts = [n for n in (1, 2, 4, 8) if n <= gpu.max_per_node]
    shapes = [(n, 1) for n in counts]
    shapes += [(gpu.max_per_node, k) for k in range(2, MAX_SUGGESTED_NODES + 1)]
    for count, nodes in shapes:
        request, _ = _request(profile, gpu, count, nodes, context, 1, precision)
        request, _ = _settle_kv_dtype(request, None)
        full = [c for c in _candidates(request) if c.max_model_len >= request.target]
        if full:
            chosen = full[0]
            # Report the GPUs one replica needs, not the node size we happened to try.
            used = count if nodes > 1 else chosen.tensor_parallel
            return Setup(
                gpu=gpu.id,
                count=used,
                nodes=nodes,
                precision=precision,
                tensor_parallel=chosen.tensor_parallel,
                pipeline_parallel=chosen.pipeline_parallel,
                max_model_len=chosen.max_model_len,
            )
    return None


def _alternatives(request: _Request) -> list[Setup]:
    """Smallest setups serving the full requested context: same precision first."""
    setups = minimum_setups(request.profile, request.gpu, request.target)
    return sorted(setups, key=lambda s: s.precision != request.precision)
