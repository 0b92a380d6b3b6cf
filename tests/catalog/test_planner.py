"""The planner's acceptance cases (issue #3) and its arithmetic."""

from __future__ import annotations

import pytest

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
    assert result.quantization == "fp8"
    assert result.full_context_sequences >= 1
    # One full 128K sequence at BF16 KV is 40 GiB (reference table): it must be in the budget.
    assert result.kv_cache_tokens * result.kv_bytes_per_token >= 40 * (1 << 30)


def test_70b_bf16_on_2_h100_does_not_fit_and_proposes_4_gpus_or_fp8() -> None:
    result = plan("llama-3.1-70b", "h100", 2, precision="bf16")
    assert not result.fits
    assert result.reason is not None and "65.8 GiB of weights per GPU" in result.reason
    described = [s.describe() for s in result.alternatives]
    assert described == ["4x h100-sxm with BF16 (TP 4)", "2x h100-sxm with FP8 (TP 2)"]


def test_405b_fp8_on_8_h100_fits_at_least_8k() -> None:
    result = plan("llama-3.1-405b", "h100", 8, context=8192)
    assert result.fits and result.precision == "fp8"
    assert result.tensor_parallel == 8 and result.pipeline_parallel == 1
    assert result.max_model_len >= 8192
    # The FP8 checkpoint is quantized already: no --quantization flag.
    assert result.quantization is None


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
    one = plan("llama-3.1-70b", "h100", 8, context=131072, precision="fp8")
    many = plan("llama-3.1-70b", "h100", 8, context=131072, precision="fp8", concurrency=16)
    assert one.tensor_parallel == 2
    assert many.tensor_parallel > one.tensor_parallel
    assert many.full_context_sequences >= 16


def test_decode_floor_matches_the_bandwidth_table() -> None:
    # Reference §3.2: 8B BF16 on 1x H100 4.8 ms; 70B FP8 TP2 10.5 ms; 405B FP8 TP8 15.1 ms.
    assert plan("llama-3.1-8b", "h100", 1).decode_ms_per_token_floor == pytest.approx(4.8, 0.02)
    fp8_70b = plan("llama-3.1-70b", "h100", 2, precision="fp8")
    assert fp8_70b.decode_ms_per_token_floor == pytest.approx(10.5, 0.02)
    assert plan("llama-3.1-405b", "h100", 8).decode_ms_per_token_floor == pytest.approx(15.1, 0.02)


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
