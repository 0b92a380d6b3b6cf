"""`serving plan`, `serving profiles`, `serving gpus` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from serving.catalog.profiles import load_profiles
from serving.cli import main
from serving.engine.exitcodes import ExitCode


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json_parses_and_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "plan",
        "llama-3.1-70b",
        "--gpu",
        "h100",
        "--count",
        "2",
        "--precision",
        "fp8",
        "--context",
        "131072",
        "--json",
    ]
    code, out, _ = _run(argv, capsys)
    assert code == ExitCode.OK
    data = json.loads(out)
    assert data["fits"] is True
    assert (data["tensor_parallel"], data["max_model_len"]) == (2, 131072)
    assert data["kv_bytes_per_token"] == 320 * 1024
    _, again, _ = _run(argv, capsys)
    assert again == out
    expected_keys = {
        "model",
        "gpu",
        "count",
        "nodes",
        "fits",
        "reason",
        "objective",
        "precision",
        "quantization",
        "allow_deprecated_quantization",
        "kv_cache_dtype",
        "tensor_parallel",
        "pipeline_parallel",
        "replicas",
        "requested_context",
        "max_model_len",
        "context_reduced",
        "concurrency",
        "gpu_memory_utilization",
        "max_num_seqs",
        "max_num_batched_tokens",
        "assumed_max_num_seqs",
        "assumed_max_num_batched_tokens",
        "enforce_eager",
        "kv_bytes_per_token",
        "kv_cache_tokens",
        "kv_cache_tokens_planned",
        "full_context_sequences",
        "memory_per_gpu",
        "decode_ms_per_token_floor",
        "decode_tokens_per_s_ceiling",
        "notes",
        "layouts",
        "alternatives",
    }
    assert set(data) == expected_keys


def test_plan_that_does_not_fit_exits_3_with_the_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(["plan", "llama-3.1-70b", "--gpu", "h100", "--count", "2"], capsys)
    assert code == ExitCode.DOES_NOT_FIT
    assert "DOES NOT FIT" in out
    assert "4x h100-sxm with BF16 (TP 4)" in out and "2x h100-sxm with FP8 (TP 2)" in out
    code, out, _ = _run(
        ["plan", "llama-3.1-70b", "--gpu", "h100", "--count", "2", "--json"], capsys
    )
    assert code == ExitCode.DOES_NOT_FIT
    assert json.loads(out)["alternatives"][0]["count"] == 4


def test_human_plan_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["plan", "llama-3.1-8b", "--gpu", "l4"], capsys)
    assert code == ExitCode.OK
    assert "max model len" in out and "(reduced from 32,768)" in out
    assert "note: context reduced" in out


def test_minimum_states_what_the_model_needs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["plan", "llama-3.1-70b", "--minimum"], capsys)
    assert code == ExitCode.OK
    assert (
        out.strip() == "llama-3.1-70b needs at least 4x h100-sxm with BF16 or 2x h100-sxm with FP8"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "llama-4"], "unknown model profile 'llama-4'; known profiles: llama-3.1-405b"),
        (["plan", "llama-3.1-8b", "--gpu", "tpu-v5"], "unknown GPU 'tpu-v5'; known GPUs: h100-sxm"),
        (["plan", "llama-3.1-8b", "--count", "0"], "at least 1"),
        (["plan", "smollm2-135m", "--precision", "fp8"], "has no fp8 weights"),
    ],
)
def test_bad_input_is_a_clear_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == ExitCode.USAGE
    assert message in err
    assert out == ""


def test_user_profiles_dir_adds_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    builtin = load_profiles()["mistral-7b"].model_dump(mode="json")
    custom = {**builtin, "name": "my-mistral", "served_model_name": "mine"}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(custom))
    code, out, _ = _run(["profiles", "--profiles", str(tmp_path)], capsys)
    assert code == ExitCode.OK and "my-mistral" in out
    monkeypatch.setenv("SERVING_PROFILES_DIR", str(tmp_path))
    code, out, _ = _run(["plan", "my-mistral", "--json"], capsys)
    assert code == ExitCode.OK and json.loads(out)["model"] == "my-mistral"


def test_invalid_user_profile_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\n")
    code, _, err = _run(["profiles", "--profiles", str(tmp_path)], capsys)
    assert code == ExitCode.USAGE
    assert "broken.yaml" in err


@pytest.mark.parametrize(
    ("name", "gpu_id"),
    [
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA L4", "l4"),
    ],
)
def test_gpus_match_maps_nvidia_smi_names(
    name: str, gpu_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["gpus", "--match", name], capsys)
    assert (code, out.strip()) == (ExitCode.OK, gpu_id)


def test_gpus_match_unknown_card(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["gpus", "--match", "NVIDIA GeForce GTX 1080"], capsys)
    assert code == ExitCode.USAGE and "no catalog GPU matches" in err


def test_plan_takes_the_engine_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "llama-3.1-8b", "--gpu", "h100", "--count", "8", "--json"]
    code, out, _ = _run([*argv, "--objective", "latency"], capsys)
    assert code == ExitCode.OK and json.loads(out)["tensor_parallel"] == 8
    tuned = [
        *argv,
        "--tp",
        "2",
        "--gpu-memory-utilization",
        "0.95",
        "--max-num-seqs",
        "64",
        "--max-num-batched-tokens",
        "4096",
        "--enforce-eager",
    ]
    code, out, _ = _run(tuned, capsys)
    data = json.loads(out)
    assert code == ExitCode.OK
    assert (data["tensor_parallel"], data["replicas"]) == (2, 4)
    assert data["gpu_memory_utilization"] == 0.95
    assert (data["max_num_seqs"], data["max_num_batched_tokens"]) == (64, 4096)
    assert data["enforce_eager"] is True
    assert data["layouts"][0]["chosen"] is True


def test_plan_text_lists_ranked_layouts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["plan", "llama-3.1-405b", "--gpu", "h200", "--count", "8"], capsys)
    assert code == ExitCode.OK
    assert "layouts ranked by capacity:" in out
    assert "* TP 8, FP8 + FP8 KV" in out and "TP 4 x 2 replicas" in out


@pytest.mark.parametrize(
    "extra", [["--tp", "3"], ["--gpu-memory-utilization", "1.5"], ["--objective", "speed"]]
)
def test_bad_engine_options_exit_2(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "llama-3.1-70b", "--gpu", "h100", "--count", "8", *extra]
    try:
        code, _, err = _run(argv, capsys)
    except SystemExit as exc:  # argparse rejects bad choices and types itself
        code, err = int(exc.code or 0), capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err
