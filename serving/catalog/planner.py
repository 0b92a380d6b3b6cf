"""The planner: will this model fit this hardware, and with which vLLM settings?

Public API (docs/planner.md):

    plan(profile, gpu, count=1, nodes=1, context=None, concurrency=1, precision=None,
         kv_cache_dtype=None, *, tensor_parallel=None, gpu_memory_utilization=None,
         max_num_seqs=None, max_num_batched_tokens=None, enforce_eager=None,
         objective="capacity") -> Plan
    minimum_setups(profile, gpu, context=None) -> list[Setup]
    kv_bytes_per_token(architecture, kv_cache_dtype="auto") -> int

`count` is GPUs per node; `nodes` > 1 means one replica spread over nodes with pipeline
parallelism (TP = count inside a node, PP = nodes across them). On one node the planner ranks
every tensor-parallel size by the objective (serving.catalog.layouts) and fills the remaining GPUs
with replicas; the plan lists the best alternatives, FP8 ones included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from serving.catalog.errors import CatalogError
from serving.catalog.gpus import Gpu, get_gpu
from serving.catalog.layouts import (
    OBJECTIVES,
    Candidate,
    Hardware,
    Objective,
    Settings,
    candidate,
    rank,
    shapes,
)
from serving.catalog.memory import GIB, GpuMemory, kv_bytes_per_token
from serving.catalog.overhead import CURRENT, Generation, resolve_batch
from serving.catalog.profiles import KvCacheDtype, Precision, Profile, get_profile

__all__ = [
    "MIN_USEFUL_CONTEXT",
    "OBJECTIVES",
    "Layout",
    "Plan",
    "Setup",
    "kv_bytes_per_token",
    "minimum_setups",
    "plan",
]

# The planner shortens the context to make a model fit, but not below this: a shorter window
# is no use for chat or agent traffic, so such a setup is reported as not fitting.
MIN_USEFUL_CONTEXT = 16384
MAX_SUGGESTED_NODES = 4
SHOWN_LAYOUTS = 5


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


class Layout(BaseModel):
    """One ranked layout of the model on the requested hardware."""

    model_config = ConfigDict(frozen=True)

    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    precision: Precision
    kv_cache_dtype: KvCacheDtype
    max_model_len: int
    full_context: bool
    kv_cache_tokens: int
    full_context_sequences: int
    decode_ms_per_token_floor: float
    score: float
    chosen: bool

    def describe(self) -> str:
        layout = f"TP {self.tensor_parallel}"
        if self.pipeline_parallel > 1:
            layout += f" x PP {self.pipeline_parallel}"
        if self.replicas > 1:
            layout += f" x {self.replicas} replicas"
        kv = " + FP8 KV" if self.kv_cache_dtype == "fp8" else ""
        return f"{layout}, {self.precision.upper()}{kv}"


class MemoryPerGpu(BaseModel):
    """GiB, for one GPU of a replica. overhead = activations + non_torch + cuda_graphs."""

    model_config = ConfigDict(frozen=True)

    total_gib: float
    budget_gib: float
    weights_gib: float
    overhead_gib: float
    activations_gib: float
    non_torch_gib: float
    cuda_graphs_gib: float
    kv_cache_gib: float
    reserve_gib: float


class Plan(BaseModel):
    """The planner's answer; when `fits` is False, `reason` says why and `alternatives` what
    fits instead. `layouts` ranks the layouts of the requested hardware by `objective`."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    count: int
    nodes: int
    fits: bool
    reason: str | None
    objective: Objective
    precision: Precision
    quantization: str | None
    allow_deprecated_quantization: bool
    kv_cache_dtype: KvCacheDtype
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int
    requested_context: int
    max_model_len: int
    context_reduced: bool
    concurrency: int
    gpu_memory_utilization: float
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    assumed_max_num_seqs: int
    assumed_max_num_batched_tokens: int
    enforce_eager: bool
    kv_bytes_per_token: int
    kv_cache_tokens: int
    kv_cache_tokens_planned: int
    full_context_sequences: int
    memory_per_gpu: MemoryPerGpu
    decode_ms_per_token_floor: float
    decode_tokens_per_s_ceiling: float
    notes: tuple[str, ...] = ()
    layouts: tuple[Layout, ...] = ()
    alternatives: tuple[Setup, ...] = ()

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel


@dataclass(frozen=True)
class _Request:
    profile: Profile
    hardware: Hardware
    settings: Settings
    precision: Precision
    kv_cache_dtype: KvCacheDtype
    objective: Objective

    @property
    def gpu(self) -> Gpu:
        return self.hardware.gpu

    @property
    def floor(self) -> int:
        return min(self.settings.target, MIN_USEFUL_CONTEXT)


def plan(
    profile: Profile | str,
    gpu: Gpu | str,
    count: int = 1,
    nodes: int = 1,
    context: int | None = None,
    concurrency: int = 1,
    precision: Precision | None = None,
    kv_cache_dtype: KvCacheDtype | None = None,
    *,
    tensor_parallel: int | None = None,
    gpu_memory_utilization: float | None = None,
    max_num_seqs: int | None = None,
    max_num_batched_tokens: int | None = None,
    enforce_eager: bool | None = None,
    objective: Objective = "capacity",
    generation: Generation = CURRENT,
) -> Plan:
    """Plan `profile` on `nodes` x `count` GPUs of type `gpu`, serving `context` tokens per
    sequence (default: the profile's default context) to `concurrency` sequences at once.
    Unset engine options come from the profile, then from vLLM's defaults for the GPU.
    `generation` plans for an older vLLM's memory behaviour (the calibration fixtures)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    engine = profile.engine
    request, notes = _request(
        profile,
        Hardware(gpu, count, nodes),
        context,
        concurrency,
        precision,
        kv_cache_dtype,
        Overrides(
            tensor_parallel=tensor_parallel,
            utilization=gpu_memory_utilization or engine.gpu_memory_utilization,
            max_num_seqs=max_num_seqs or engine.max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens or engine.max_num_batched_tokens,
            enforce_eager=engine.enforce_eager if enforce_eager is None else enforce_eager,
            generation=generation,
        ),
        objective,
    )
    every = _all_candidates(request)
    primary = [
        c
        for c in every
        if c.precision == request.precision and c.kv_cache_dtype == request.kv_cache_dtype
    ]
    chosen = _choose(request, primary)
    notes += _fp8_suggestion(request, chosen, every)
    if chosen is None:
        # Explain with the most favourable layout: most KV room, then most GPUs per replica.
        best = max(primary, key=_headroom) if primary else None
        return _build(request, best, every, notes, fits=False)
    if not chosen.full:
        notes.insert(
            0,
            f"context reduced from {request.settings.target:,} to {chosen.max_model_len:,} "
            "tokens: the KV cache cannot hold more",
        )
    if request.hardware.nodes > 1 and _fits_one_node(request):
        notes.append("the model fits on one node: prefer replicas over pipeline parallelism")
    return _build(request, chosen, every, notes, fits=True)


@dataclass(frozen=True)
class Overrides:
    tensor_parallel: int | None
    utilization: float
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    enforce_eager: bool
    generation: Generation = CURRENT


def _request(
    profile: Profile,
    hardware: Hardware,
    context: int | None,
    concurrency: int,
    precision: Precision | None,
    kv_cache_dtype: KvCacheDtype | None,
    overrides: Overrides,
    objective: Objective,
) -> tuple[_Request, list[str]]:
    gpu = hardware.gpu
    if min(hardware.count, hardware.nodes, concurrency, 1 if context is None else context) < 1:
        raise CatalogError("count, nodes, concurrency and context must be at least 1")
    if hardware.count > gpu.max_per_node:
        raise CatalogError(
            f"{gpu.id} nodes hold at most {gpu.max_per_node} GPUs (got {hardware.count})"
        )
    if objective not in OBJECTIVES:
        raise CatalogError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    if not 0.1 < overrides.utilization <= 0.98:
        raise CatalogError("gpu memory utilization must be above 0.1 and at most 0.98")
    _check_tensor_parallel(profile, hardware, overrides.tensor_parallel)
    notes: list[str] = []
    target = context or profile.default_context
    if target > profile.native_context:
        notes.append(f"context capped at the native {profile.native_context:,} tokens")
        target = profile.native_context
    chosen = precision or profile.precision
    profile.weights_for(chosen)  # raises a clear error when the profile lacks that precision
    if chosen == "fp8" and not gpu.fp8:
        notes.append(f"{gpu.id} has no FP8 tensor cores: FP8 weights run weight-only (slower)")
    # The profile's KV dtype goes with its recommended precision (405B: FP8 weights, FP8 KV);
    # asking for the other precision plans the model dtype unless the KV dtype is asked too.
    kv = kv_cache_dtype or (profile.kv_cache_dtype if chosen == profile.precision else "auto")
    if kv == "fp8" and not gpu.fp8:
        notes.append(f"{gpu.id} has no FP8 support for the KV cache: using the model dtype")
        kv = "auto"
    settings = Settings(
        target=target,
        concurrency=concurrency,
        utilization=overrides.utilization,
        batch=resolve_batch(
            gpu, overrides.max_num_seqs, overrides.max_num_batched_tokens, overrides.generation
        ),
        enforce_eager=overrides.enforce_eager,
        tensor_parallel=overrides.tensor_parallel,
        generation=overrides.generation,
    )
    return _Request(profile, hardware, settings, chosen, kv, objective), notes


def _check_tensor_parallel(profile: Profile, hardware: Hardware, tp: int | None) -> None:
    if tp is None:
        return
    if tp < 1 or hardware.count % tp:
        raise CatalogError(f"--tp {tp} must divide the {hardware.count} GPUs per node")
    if hardware.nodes > 1 and tp != hardware.count:
        raise CatalogError("over several nodes TP is the GPUs per node (PP spans the nodes)")
    if not shapes(profile, hardware, tp):
        arch = profile.architecture
        raise CatalogError(
            f"TP {tp} cannot shard {profile.name}: {arch.attention_heads} attention heads and "
            f"{arch.kv_heads} KV heads must divide evenly"
        )


def _kv_options(gpu: Gpu) -> tuple[KvCacheDtype, ...]:
    return ("auto", "fp8") if gpu.fp8 else ("auto",)


def _all_candidates(request: _Request) -> list[Candidate]:
    found = []
    for layout in shapes(request.profile, request.hardware, request.settings.tensor_parallel):
        for precision in request.profile.weights:
            for kv in _kv_options(request.gpu):
                found.append(
                    candidate(
                        request.profile, request.hardware, request.settings, layout, precision, kv
                    )
                )
    return found


def _choose(request: _Request, candidates: list[Candidate]) -> Candidate | None:
    full = [c for c in candidates if c.full]
    if full:
        return rank(full, request.objective, request.gpu)[0]
    reduced = [c for c in candidates if c.max_model_len >= request.floor]
    if not reduced:
        return None
    return max(reduced, key=lambda c: (c.max_model_len, c.score(request.objective, request.gpu)))


def _fp8_suggestion(
    request: _Request, chosen: Candidate | None, every: list[Candidate]
) -> list[str]:
    """When the requested precision cannot serve the full context, name the FP8 layout that
    can (only on GPUs with FP8 tensor cores: elsewhere FP8 runs weight-only)."""
    if (chosen is not None and chosen.full) or not request.gpu.fp8:
        return []
    unlocking = [
        c
        for c in every
        if c.full
        and (c.precision == "fp8" or c.kv_cache_dtype == "fp8")
        and (c.precision, c.kv_cache_dtype) != (request.precision, request.kv_cache_dtype)
    ]
    if not unlocking:
        return []
    # Prefer the least change: an FP8 KV cache alone, then FP8 weights, then both.
    best = min(
        unlocking,
        key=lambda c: (
            (c.precision == "fp8") + 2 * (c.kv_cache_dtype == "fp8" and c.precision == "fp8"),
            -c.score(request.objective, request.gpu),
        ),
    )
    flags = []
    if best.precision == "fp8" and request.precision != "fp8":
        flags.append("--precision fp8")
    if best.kv_cache_dtype == "fp8" and request.kv_cache_dtype != "fp8":
        flags.append("--kv-cache-dtype fp8")
    what = " and ".join(flags)
    return [
        f"FP8 serves the full {request.settings.target:,} tokens on {request.gpu.id}: {what} "
        f"({_layout_words(best)}, {best.sequences} full-context sequence(s))"
    ]


def _layout_words(c: Candidate) -> str:
    words = f"TP {c.tensor_parallel}"
    if c.pipeline_parallel > 1:
        words += f" x PP {c.pipeline_parallel}"
    return words + (f" x {c.replicas} replicas" if c.replicas > 1 else "")


def _headroom(candidate: Candidate) -> tuple[int, int]:
    return candidate.memory.planned_tokens, candidate.gpus_per_replica


def _fits_one_node(request: _Request) -> bool:
    hardware = Hardware(request.gpu, request.gpu.max_per_node, 1)
    single = dataclasses.replace(
        request,
        hardware=hardware,
        settings=dataclasses.replace(request.settings, tensor_parallel=None),
    )
    return any(
        c.full
        for c in _all_candidates(single)
        if c.precision == request.precision and c.kv_cache_dtype == request.kv_cache_dtype
    )


def _ranked_layouts(
    request: _Request, chosen: Candidate | None, every: list[Candidate]
) -> tuple[Layout, ...]:
    """The chosen layout, the best others at the requested precision, then the best with
    another precision or KV dtype (FP8 options)."""
    useful = [c for c in every if c.max_model_len >= request.floor and c is not chosen]

    def ordered(group: list[Candidate]) -> list[Candidate]:
        full = rank([c for c in group if c.full], request.objective, request.gpu)
        return full + sorted((c for c in group if not c.full), key=lambda c: -c.max_model_len)

    same = [
        c
        for c in useful
        if (c.precision, c.kv_cache_dtype) == (request.precision, request.kv_cache_dtype)
    ]
    other = [c for c in useful if c not in same]
    picked = ([chosen] if chosen is not None else []) + ordered(same)[:3] + ordered(other)[:2]
    return tuple(_layout(request, c, c is chosen) for c in picked[: SHOWN_LAYOUTS + 1])


def _layout(request: _Request, c: Candidate, chosen: bool) -> Layout:
    return Layout(
        tensor_parallel=c.tensor_parallel,
        pipeline_parallel=c.pipeline_parallel,
        replicas=c.replicas,
        precision=c.precision,
        kv_cache_dtype=c.kv_cache_dtype,
        max_model_len=c.max_model_len,
        full_context=c.full,
        kv_cache_tokens=c.memory.kv_tokens,
        full_context_sequences=c.served_sequences,
        decode_ms_per_token_floor=round(c.decode_floor_s * 1e3, 2),
        score=round(c.score(request.objective, request.gpu), 4),
        chosen=chosen,
    )


def _build(
    request: _Request,
    chosen: Candidate | None,
    every: list[Candidate],
    notes: list[str],
    *,
    fits: bool,
) -> Plan:
    profile, settings = request.profile, request.settings
    weights = profile.weights_for(request.precision)
    tp, pp = (
        (chosen.tensor_parallel, chosen.pipeline_parallel)
        if chosen
        else (request.hardware.count, 1)
    )
    floor_s = (
        chosen.decode_floor_s
        if chosen
        else candidate(
            profile, request.hardware, settings, (tp, pp), request.precision, request.kv_cache_dtype
        ).decode_floor_s
    )
    memory = chosen.memory if chosen else None
    max_len = chosen.max_model_len if chosen and fits else 0
    batch = settings.batch
    return Plan(
        model=profile.name,
        gpu=request.gpu.id,
        count=request.hardware.count,
        nodes=request.hardware.nodes,
        fits=fits,
        reason=None if fits else _reason(request, chosen),
        objective=request.objective,
        precision=request.precision,
        quantization=weights.quantization,
        allow_deprecated_quantization=weights.allow_deprecated_quantization,
        kv_cache_dtype=request.kv_cache_dtype,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        replicas=chosen.replicas if chosen else 1,
        requested_context=settings.target,
        max_model_len=max_len,
        context_reduced=fits and max_len < settings.target,
        concurrency=settings.concurrency,
        gpu_memory_utilization=settings.utilization,
        max_num_seqs=batch.max_num_seqs if batch.seqs_set else None,
        max_num_batched_tokens=batch.max_num_batched_tokens if batch.tokens_set else None,
        assumed_max_num_seqs=batch.max_num_seqs,
        assumed_max_num_batched_tokens=batch.max_num_batched_tokens,
        enforce_eager=settings.enforce_eager,
        kv_bytes_per_token=kv_bytes_per_token(profile.architecture, request.kv_cache_dtype),
        kv_cache_tokens=memory.kv_tokens if memory else 0,
        kv_cache_tokens_planned=memory.planned_tokens if memory else 0,
        full_context_sequences=chosen.served_sequences if chosen and fits else 0,
        memory_per_gpu=_memory_report(memory),
        decode_ms_per_token_floor=round(floor_s * 1e3, 2),
        decode_tokens_per_s_ceiling=round(1 / floor_s, 1),
        notes=tuple(notes),
        layouts=_ranked_layouts(request, chosen if fits else None, every),
        alternatives=() if fits else tuple(_alternatives(request)),
    )


def _gib(n: int) -> float:
    return round(n / GIB, 2)


def _memory_report(memory: GpuMemory | None) -> MemoryPerGpu:
    if memory is None:
        zero = 0.0
        return MemoryPerGpu(
            total_gib=zero,
            budget_gib=zero,
            weights_gib=zero,
            overhead_gib=zero,
            activations_gib=zero,
            non_torch_gib=zero,
            cuda_graphs_gib=zero,
            kv_cache_gib=zero,
            reserve_gib=zero,
        )
    return MemoryPerGpu(
        total_gib=_gib(memory.total),
        budget_gib=_gib(memory.budget),
        weights_gib=_gib(memory.weights),
        overhead_gib=_gib(memory.overhead.total),
        activations_gib=_gib(memory.overhead.activations),
        non_torch_gib=_gib(memory.overhead.non_torch),
        cuda_graphs_gib=_gib(memory.overhead.cuda_graphs),
        kv_cache_gib=_gib(memory.kv_space),
        reserve_gib=_gib(memory.reserve),
    )


def _reason(request: _Request, best: Candidate | None) -> str:
    where = f"{request.hardware.nodes * request.hardware.count}x {request.gpu.id}"
    name = f"{request.profile.name} {request.precision.upper()}"
    if best is None:
        return f"{name}: no valid tensor/pipeline layout on {where}"
    weights_gib = best.memory.weights / GIB
    budget_gib = best.memory.budget / GIB
    if best.memory.planned_tokens == 0:
        return (
            f"{name} on {where}: {weights_gib:.1f} GiB of weights per GPU leave no KV cache "
            f"room in the {budget_gib:.1f} GiB budget"
        )
    return (
        f"{name} on {where}: {weights_gib:.1f} GiB of weights per GPU leave KV cache room for "
        f"{best.memory.planned_tokens:,} tokens, short of {request.floor:,} x "
        f"{request.settings.concurrency} sequence(s)"
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
    hardware = [Hardware(gpu, n, 1) for n in counts]
    hardware += [Hardware(gpu, gpu.max_per_node, k) for k in range(2, MAX_SUGGESTED_NODES + 1)]
    engine = profile.engine
    overrides = Overrides(
        None,
        engine.gpu_memory_utilization,
        engine.max_num_seqs,
        engine.max_num_batched_tokens,
        engine.enforce_eager,
    )
    for hw in hardware:
        request, _ = _request(profile, hw, context, 1, precision, None, overrides, "capacity")
        full = sorted(
            (
                c
                for c in _all_candidates(request)
                if c.full
                and c.precision == precision
                and c.kv_cache_dtype == request.kv_cache_dtype
            ),
            key=lambda c: c.gpus_per_replica,
        )
        if full:
            chosen = full[0]
            # Report the GPUs one replica needs, not the node size we happened to try.
            used = hw.count if hw.nodes > 1 else chosen.tensor_parallel
            return Setup(
                gpu=gpu.id,
                count=used,
                nodes=hw.nodes,
                precision=precision,
                tensor_parallel=chosen.tensor_parallel,
                pipeline_parallel=chosen.pipeline_parallel,
                max_model_len=chosen.max_model_len,
            )
    return None


def _alternatives(request: _Request) -> list[Setup]:
    """Smallest setups serving the full requested context: same precision first."""
    setups = minimum_setups(request.profile, request.gpu, request.settings.target)
    return sorted(setups, key=lambda s: s.precision != request.precision)
