"""The profile and GPU data: every built-in file loads and says what issue #3 asks of it."""

from __future__ import annotations

import pytest

from serving.catalog.gpus import all_gpus, get_gpu, match_gpu
from serving.catalog.modules import weight_rows
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
    fp8 = profile.weights["fp8"]
    assert fp8.repo == "meta-llama/Llama-3.1-405B-Instruct-FP8"
    assert fp8.quantization is None
    # Meta's checkpoint: FBGEMM FP8 (deprecated in vLLM 0.32), attention and edge layers BF16.
    assert fp8.quant_method == "fbgemm_fp8" and fp8.allow_deprecated_quantization
    assert {"attention", "first_layer", "last_layer", "embeddings", "lm_head"} == set(
        fp8.bf16_modules
    )


def test_online_fp8_uses_the_method_vllm_032_names() -> None:
    for profile in load_profiles().values():
        fp8 = profile.weights.get("fp8")
        if fp8 is not None and fp8.quant_method is None:
            assert fp8.quantization == "fp8_per_tensor", profile.name


def test_no_profile_passes_a_chat_template() -> None:
    # Every checkpoint ships its own (tool-aware for Llama 3.1; mistral_common for Mistral).
    for profile in load_profiles().values():
        assert profile.engine.chat_template is None, profile.name


def test_gated_repos() -> None:
    gated = {name for name, p in load_profiles().items() if p.gated}
    assert gated == {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "mistral-7b",
        "mixtral-8x7b",
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_module_arithmetic_adds_up_to_the_published_parameter_count(name: str) -> None:
    profile = load_profiles()[name]
    rows = weight_rows(profile.architecture, "bf16")
    total = sum(r.params for r in rows) / 1e9
    assert total == pytest.approx(profile.architecture.params_total_b, rel=0.005)


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
    assert ids == {
        "h100-sxm",
        "h100-pcie",
        "h200",
        "b200",
        "a100-40gb",
        "a100-80gb",
        "l40s",
        "rtx-pro-6000",
        "a10g",
        "l4",
    }
    assert get_gpu("h100").id == "h100-sxm"
    assert get_gpu("h200").bandwidth_tbps == 4.8
    assert not get_gpu("a100-80gb").fp8 and get_gpu("l4").fp8
    assert get_gpu("h100-pcie").interconnect == "pcie"


def test_blackwell_cards() -> None:
    b200, rtx = get_gpu("b200"), get_gpu("rtx-pro-6000")
    assert (b200.torch_total_gib, b200.bandwidth_tbps, b200.interconnect) == (178.35, 8.0, "nvlink")
    assert (rtx.torch_total_gib, rtx.interconnect) == (94.97, "pcie")
    assert b200.fp8 and rtx.fp8


def test_pytorch_sees_less_than_nvidia_smi() -> None:
    for gpu in all_gpus():
        assert gpu.torch_total_gib < gpu.memory_gib, gpu.id
        assert gpu.memory_gib - gpu.torch_total_gib < 1.5, gpu.id


@pytest.mark.parametrize(
    ("name", "gpu_id"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA-H100-80GB-HBM3", "h100-sxm"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA-B200", "b200"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
        ("NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition", "rtx-pro-6000"),
        ("NVIDIA-A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA-L40S", "l40s"),
        ("NVIDIA L4", "l4"),
    ],
)
def test_nvidia_smi_names_and_feature_discovery_labels_match(name: str, gpu_id: str) -> None:
    gpu = match_gpu(name)
    assert gpu is not None and gpu.id == gpu_id
