"""`serving launch` and `serving model` through the real CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving.cli import main
from serving.engine.embedded import ensure_embedded_model
from serving.engine.exitcodes import ExitCode
from tests.engine.running import REPO_ROOT


def _serving(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_dry_run_prints_plan_and_command_without_the_api_key() -> None:
    result = _serving(
        "launch",
        "llama-3.1-70b",
        "--gpu",
        "h100",
        "--count",
        "2",
        "--precision",
        "fp8",
        "--context",
        "131072",
        "--dry-run",
        env={"VLLM_API_KEY": "sk-very-secret", "HF_TOKEN": "hf_secret"},
    )
    assert result.returncode == 0, result.stderr
    assert "llama-3.1-70b on 2x h100-sxm: FITS" in result.stdout
    assert "--tensor-parallel-size 2 --max-model-len 131072" in result.stdout
    assert "VLLM_API_KEY=<set in the environment, not shown>" in result.stdout
    assert "sk-very-secret" not in result.stdout + result.stderr
    assert "hf_secret" not in result.stdout + result.stderr


def test_launch_of_a_plan_that_does_not_fit_exits_3_with_suggestions() -> None:
    result = _serving(
        "launch",
        "llama-3.1-405b",
        "--gpu",
        "h100",
        "--count",
        "8",
        "--precision",
        "bf16",
        "--dry-run",
    )
    assert result.returncode == ExitCode.DOES_NOT_FIT
    assert "2 nodes x 8x h100-sxm with BF16 (TP 8 x PP 2)" in result.stderr
    assert "Traceback" not in result.stderr


def test_gpu_profile_without_gpu_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch", "mistral-7b", "--dry-run"]) == ExitCode.USAGE
    assert "pass --gpu" in capsys.readouterr().err


def test_unknown_profile_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch", "gpt-5", "--dry-run"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "unknown model profile 'gpt-5'" in err and "llama-3.1-8b" in err


def test_missing_weights_offline_exit_4(tmp_path: Path) -> None:
    # A GPU profile with an empty HF cache and HF_HUB_OFFLINE=1 fails at the fetch step.
    result = _serving(
        "launch",
        "mistral-7b",
        "--gpu",
        "h100",
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == ExitCode.MODEL_UNAVAILABLE, result.stderr
    assert "not in the local Hugging Face cache" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_path_prints_the_prepared_folder() -> None:
    prepared = ensure_embedded_model()
    result = _serving("model", "path")
    assert result.returncode == 0
    folder = Path(result.stdout.strip())
    assert folder == prepared
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_model_path_exits_1_when_not_prepared(tmp_path: Path) -> None:
    result = _serving("model", "path", env={"SERVING_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "serving model prepare" in result.stderr
