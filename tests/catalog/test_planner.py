"""The planner's acceptance cases (issue #3) and its arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.catalog.errors import CatalogError
from serving.catalog.gpus import get_gpu
from serving.catalog.memory import kv_bytes_per_token
from serving.catalog.planner import MIN_USEFUL_CONTEXT, Plan, minimum_setups, plan
from serving.catalog.profiles import get_profile

KIB = 1024


@pytest.mark.parametrize(
    ("model", "kib"),
    [("llama-3.1-8b", 128), ("llama-3.1-70b", 320), ("llama-3.1-405b", 504)],
)
def test_kv_per_token_matches_the_reference_bf16(model: str, kib: int) -> None:
    assert kv_bytes_per_token(get_profile(model).architecture, "auto") == kib * KIB


def test_fp8_kv_cache_halves_the_kv_per_token() -> None:
    arch = get_profile("llama-3.1-70b").architecture
    assert kv_bytes_per_token(arch, "fp8") * 2 == kv_bytes_per_token(arch, "auto")


def test_70b_fp8_on_2_h100_fits_128k() -> None:
    result = plan("llama-3.1-70b", "h100", 2, context=131072, precision="fp8")
    assert result.fits
    assert (result.tensor_parallel, result.pipeline_parallel, result.replicas) == (2, 1, 1)
    assert result.max_model_len == 131072 and not result.context_reduced
    # Online FP8 in vLLM 0.32 (`fp8` itself now only reads FP8 checkpoints).
    assert result.quantization == "fp8_per_tensor"
    assert result.full_context_sequences >= 1
    # One full 128K sequence at BF16 KV is 40 GiB (reference table): it must be in the budget.
    assert result.kv_cache_tokens * result.kv_bytes_per_token >= 40 * (1 << 30)


def test_70b_bf16_on_2_h100_does_not_fit_and_proposes_4_gpus_or_fp8() -> None:
    result = plan("llama-3.1-70b", "h100", 2, precision="bf16")
    assert not result.fits
    assert result.reason is not None and "65.7 GiB of weights per GPU" in result.reason
    described = [s.describe() for s in result.alternatives]
    assert described == ["4x h100-sxm with BF16 (TP 4)", "2x h100-sxm with FP8 (TP 2)"]


def test_405b_fp8_on_8_h100_fits_at_least_8k() -> None:
    result = plan("llama-3.1-405b", "h100", 8, context=8192)
    assert result.fits and result.precision == "fp8"
    assert result.tensor_parallel == 8 and result.pipeline_parallel == 1
    assert result.max_model_len >= 8192
    # The FP8 checkpoint is quantized already: no --quantization flag, but its method
    # (fbgemm_fp8) is deprecated in vLLM 0.32, so the plan allows it.
    assert result.quantization is None
    assert result.allow_deprecated_quantization


def test_405b_bf16_on_8_h100_does_not_fit_and_proposes_two_nodes() -> None:
    result = plan("llama-3.1-405b", "h100", 8, precision="bf16")
    assert not result.fits
    two_nodes = result.alternatives[0]
    assert two_nodes.precision == "bf16"
    assert (two_nodes.nodes, two_nodes.count) == (2, 8)
    assert (two_nodes.tensor_parallel, two_nodes.pipeline_parallel) == (8, 2)
    assert any(s.precision == "fp8" and s.total_gpus == 8 for s in result.alternatives)


def test_405b_bf16_on_two_nodes_fits_with_tp8_pp2() -> None:
    result = plan("llama-3.1-405b", "h100", 8, nodes=2, precision="bf16")
    assert result.fits
    assert (result.tensor_parallel, result.pipeline_parallel) == (8, 2)


def test_8b_on_one_l4_fits_only_with_a_reduced_context_and_says_so() -> None:
    result = plan("llama-3.1-8b", "l4", 1, context=131072)
    assert result.fits
    assert result.context_reduced
    assert MIN_USEFUL_CONTEXT <= result.max_model_len < 131072
    assert result.max_model_len % 1024 == 0
    assert any("context reduced" in note for note in result.notes)


def test_mixtral_bf16_needs_two_80gb_gpus() -> None:
    assert not plan("mixtral-8x7b", "h100", 1, precision="bf16").fits
    assert not plan("mixtral-8x7b", "a100-80gb", 1, precision="bf16").fits
    for gpu in ("h100", "a100-80gb"):
        assert plan("mixtral-8x7b", gpu, 2, precision="bf16").fits
    smallest = minimum_setups("mixtral-8x7b", "a100-80gb")[0]
    assert (smallest.precision, smallest.count) == ("bf16", 2)


def test_small_model_on_many_gpus_uses_replicas_not_tensor_parallel() -> None:
    result = plan("llama-3.1-8b", "h100", 8)
    assert (result.tensor_parallel, result.replicas) == (1, 8)


def test_concurrency_grows_the_layout() -> None:
    one = plan("llama-3.1-70b", "h100", 8, context=131072, precision="fp8", concurrency=1)
    many = plan("llama-3.1-70b", "h100", 8, context=131072, precision="fp8", concurrency=10)
    assert one.fits and many.fits and not many.context_reduced
    assert many.full_context_sequences >= 10
    # Two TP 4 replicas hold 8 sequences of 128K; ten need one TP 8 replica.
    assert (one.tensor_parallel, one.replicas) == (4, 2)
    assert (many.tensor_parallel, many.replicas) == (8, 1)


def test_decode_floor_matches_the_bandwidth_table() -> None:
    # Reference §3.2: 8B BF16 on 1x H100 4.8 ms. Its FP8 rows count 1 byte per parameter; with
    # the embeddings and LM head in BF16 (and Meta's 405B attention and edge layers) the floor is
    # 72.66 GB / 2 / 3.35 TB/s = 10.84 ms for 70B FP8 TP 2, 487.2 GB / 8 / 3.35 = 18.18 ms for 405B.
    assert plan("llama-3.1-8b", "h100", 1).decode_ms_per_token_floor == pytest.approx(4.8, 0.02)
    fp8_70b = plan("llama-3.1-70b", "h100", 2, precision="fp8")
    assert fp8_70b.decode_ms_per_token_floor == pytest.approx(10.84, 0.01)
    fp8_405b = plan("llama-3.1-405b", "h100", 8)
    assert fp8_405b.decode_ms_per_token_floor == pytest.approx(18.18, 0.01)


def test_fp8_kv_is_not_used_on_gpus_without_fp8() -> None:
    result = plan("llama-3.1-405b", "a100-80gb", 8)
    assert result.kv_cache_dtype == "auto"
    assert any("FP8" in note for note in result.notes)


def test_invalid_tensor_parallel_sizes_are_skipped() -> None:
    # 3 does not divide 64 heads: only TP 1 is valid, and 70B does not fit one GPU.
    result = plan("llama-3.1-70b", "h100", 3)
    assert not result.fits
    assert result.alternatives[0].count == 4


def test_plan_accepts_objects_and_names_alike() -> None:
    by_name = plan("llama-3.1-8b", "l40s", 1)
    by_object = plan(get_profile("llama-3.1-8b"), get_gpu("l40s"), 1)
    assert by_name == by_object


def test_plan_json_round_trips() -> None:
    result = plan("llama-3.1-70b", "h100", 2, precision="bf16")
    assert Plan.model_validate_json(result.model_dump_json()) == result


# Issue #16: per-module weights, ranked layouts, engine options.

GIB = 1 << 30


def test_405b_fp8_weights_per_gpu_match_the_per_module_arithmetic() -> None:
    # docs/planner.md, "Llama 3.1 405B FP8 (Meta)": BF16 embeddings, LM head, every attention
    # projection and the MLPs of layers 0 and 125; FP8 for the other 124 MLPs; all / TP 8.
    hidden, inter, layers, vocab, heads, kv = 16384, 53248, 126, 128256, 128, 8
    attention = 2 * hidden * heads * 128 + 2 * hidden * kv * 128
    mlp = 3 * hidden * inter
    edges = 2 * vocab * hidden * 2
    bf16 = layers * attention * 2 + 2 * mlp * 2
    fp8 = (layers - 2) * mlp
    per_gpu = (edges + bf16 + fp8) / 8 / GIB
    assert per_gpu == pytest.approx(56.7, abs=0.05)
    result = plan("llama-3.1-405b", "h100", 8)
    assert result.memory_per_gpu.weights_gib == pytest.approx(per_gpu, rel=0.02)
    assert "56.75" in (Path(__file__).parents[2] / "docs" / "planner.md").read_text()


def test_70b_bf16_on_8_l40s_takes_the_layout_with_more_kv() -> None:
    result = plan("llama-3.1-70b", "l40s", 8)
    assert result.fits and result.tensor_parallel == 8
    by_tp = {
        (lay.tensor_parallel, lay.precision, lay.kv_cache_dtype): lay for lay in result.layouts
    }
    tp8, tp4 = by_tp[(8, "bf16", "auto")], by_tp.get((4, "bf16", "auto"))
    assert tp8.chosen
    assert tp4 is None or tp4.kv_cache_tokens * tp4.replicas < tp8.kv_cache_tokens
    # The alternatives are listed, FP8 ones included.
    assert len(result.layouts) >= 3
    assert any(lay.precision == "fp8" or lay.kv_cache_dtype == "fp8" for lay in result.layouts)


def test_405b_on_8_h200_takes_tp8_over_two_tp4_replicas() -> None:
    result = plan("llama-3.1-405b", "h200", 8)
    assert result.fits and (result.tensor_parallel, result.replicas) == (8, 1)
    tp4 = next(
        lay
        for lay in result.layouts
        if lay.tensor_parallel == 4 and lay.precision == "fp8" and lay.kv_cache_dtype == "fp8"
    )
    chosen = result.layouts[0]
    assert chosen.chosen and chosen.tensor_parallel == 8
    assert chosen.kv_cache_tokens > tp4.kv_cache_tokens * tp4.replicas
    assert chosen.full_context_sequences > tp4.full_context_sequences


def test_the_objective_changes_the_choice() -> None:
    capacity = plan("llama-3.1-8b", "h100", 8)
    latency = plan("llama-3.1-8b", "h100", 8, objective="latency")
    throughput = plan("llama-3.1-8b", "h100", 8, objective="throughput")
    assert (capacity.tensor_parallel, capacity.replicas) == (1, 8)
    assert (throughput.tensor_parallel, throughput.replicas) == (1, 8)
    assert latency.tensor_parallel == 8
    assert latency.decode_ms_per_token_floor < capacity.decode_ms_per_token_floor
    assert {capacity.objective, latency.objective} == {"capacity", "latency"}


def test_pcie_cards_are_penalised_for_large_tp() -> None:
    sxm = plan("llama-3.1-8b", "h100-sxm", 8, objective="latency")
    pcie = plan("llama-3.1-8b", "h100-pcie", 8, objective="latency")
    assert sxm.tensor_parallel == 8
    assert pcie.tensor_parallel < sxm.tensor_parallel


def test_fixed_tp_and_engine_options_are_planned_and_reported() -> None:
    fixed = plan("llama-3.1-70b", "h100", 8, tensor_parallel=4)
    assert (fixed.tensor_parallel, fixed.replicas) == (4, 2)
    base = plan("llama-3.1-8b", "h100", 1)
    more = plan("llama-3.1-8b", "h100", 1, gpu_memory_utilization=0.95)
    assert more.kv_cache_tokens > base.kv_cache_tokens
    small = plan("llama-3.1-8b", "h100", 1, max_num_seqs=64, max_num_batched_tokens=2048)
    assert small.memory_per_gpu.activations_gib < base.memory_per_gpu.activations_gib
    assert (small.max_num_seqs, small.max_num_batched_tokens) == (64, 2048)
    assert (base.max_num_seqs, base.assumed_max_num_seqs) == (None, 1024)
    eager = plan("llama-3.1-8b", "h100", 1, enforce_eager=True)
    assert eager.enforce_eager and eager.memory_per_gpu.cuda_graphs_gib == 0
    assert base.memory_per_gpu.cuda_graphs_gib > 0


@pytest.mark.parametrize(("tp", "message"), [(3, "must divide"), (16, "must divide")])
def test_a_bad_fixed_tp_is_a_clear_error(tp: int, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        plan("llama-3.1-70b", "h100", 8, tensor_parallel=tp)


def test_a_tp_that_cannot_shard_the_heads_is_a_clear_error() -> None:
    with pytest.raises(CatalogError, match="heads"):
        plan("smollm2-135m", "h100", 2, tensor_parallel=2)


def test_405b_bf16_plans_a_bf16_kv_cache() -> None:
    result = plan("llama-3.1-405b", "h100", 8, nodes=2, precision="bf16")
    assert result.fits and result.kv_cache_dtype == "auto"
    assert plan("llama-3.1-405b", "h100", 8).kv_cache_dtype == "fp8"
    asked = plan("llama-3.1-405b", "h100", 8, nodes=2, precision="bf16", kv_cache_dtype="fp8")
    assert asked.kv_cache_dtype == "fp8"


def test_8b_on_l4_suggests_fp8_for_the_full_context() -> None:
    result = plan("llama-3.1-8b", "l4", 1)
    assert not result.fits or result.context_reduced
    suggestion = [n for n in result.notes if n.startswith("FP8 serves the full 32,768")]
    assert suggestion and "fp8" in suggestion[0]
    fp8 = plan("llama-3.1-8b", "l4", 1, precision="fp8")
    assert fp8.fits and not fp8.context_reduced


def test_no_fp8_suggestion_on_gpus_without_fp8() -> None:
    result = plan("llama-3.1-8b", "a10g", 1)
    assert not any(n.startswith("FP8 serves") for n in result.notes)


def test_the_safety_reserve_is_kept_out_of_the_planned_tokens() -> None:
    result = plan("llama-3.1-8b", "h100", 1)
    assert 0 < result.kv_cache_tokens_planned < result.kv_cache_tokens
    assert result.memory_per_gpu.reserve_gib >= 0.5
