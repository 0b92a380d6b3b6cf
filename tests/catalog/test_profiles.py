"""The profile and GPU data: every built-in file loads and says what issue #3 asks of it."""

from __future__ import annotations

import pytest

from serving.catalog.gpus import all_gpus, get_gpu
from serving.catalog.profiles import load_profiles

EXPECTED = {
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "mistral-7b",
    "mixtral-8x7b",
    "smollm2-135m",
}


def test_all_profiles_load() -> None:
    assert set(load_profiles()) == EXPECTED


@pytest.mark.parametrize(
    ("name", "layers", "heads", "kv_heads", "hidden"),
    [
        ("llama-3.1-8b", 32, 32, 8, 4096),
        ("llama-3.1-70b", 80, 64, 8, 8192),
        ("llama-3.1-405b", 126, 128, 8, 16384),
        ("mistral-7b", 32, 32, 8, 4096),
        ("mixtral-8x7b", 32, 32, 8, 4096),
    ],
)
def test_architecture_numbers_match_the_reference(
    name: str, layers: int, heads: int, kv_heads: int, hidden: int
) -> None:
    arch = load_profiles()[name].architecture
    assert (arch.layers, arch.attention_heads, arch.kv_heads, arch.hidden_size) == (
        layers,
        heads,
        kv_heads,
        hidden,
    )
    assert arch.head_dim == 128


def test_llama_is_gated_and_uses_the_llama3_json_parser() -> None:
    for name in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"):
        profile = load_profiles()[name]
        assert profile.gated
        assert profile.engine.tool_call_parser == "llama3_json"
        assert profile.native_context == 131072


def test_405b_recommends_the_fp8_checkpoint() -> None:
    profile = load_profiles()["llama-3.1-405b"]
    assert profile.precision == "fp8"
    assert profile.weights["fp8"].repo == "meta-llama/Llama-3.1-405B-Instruct-FP8"
    assert profile.weights["fp8"].quantization is None


def test_mistral_pitfalls_and_tokenizer_mode() -> None:
    mistral = load_profiles()["mistral-7b"]
    assert mistral.engine.tokenizer_mode == "mistral"
    assert any("alternate" in p for p in mistral.pitfalls)
    mixtral = load_profiles()["mixtral-8x7b"]
    assert any("system role" in p for p in mixtral.pitfalls)
    assert mixtral.architecture.params_active_b < mixtral.architecture.params_total_b


def test_unpinned_revisions_are_flagged_not_invented() -> None:
    for profile in load_profiles().values():
        for weights in profile.weights.values():
            # Either a full commit hash or an explicit, visible "main" placeholder.
            assert weights.revision == "main" or len(weights.revision) == 40
            assert weights.pinned == (weights.revision != "main")


def test_only_safetensors_weights_are_fetched() -> None:
    for profile in load_profiles().values():
        for weights in profile.weights.values():
            assert not any(p.endswith((".bin", ".pth", ".pt")) for p in weights.patterns)


def test_gpu_catalog() -> None:
    ids = {gpu.id for gpu in all_gpus()}
    assert ids == {"h100-sxm", "h100-pcie", "h200", "a100-40gb", "a100-80gb", "l40s", "a10g", "l4"}
    assert get_gpu("h100").id == "h100-sxm"
    assert get_gpu("h200").bandwidth_tbps == 4.8
    assert not get_gpu("a100-80gb").fp8 and get_gpu("l4").fp8
    assert get_gpu("h100-pcie").interconnect == "pcie"
