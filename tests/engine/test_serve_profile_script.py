"""scripts/serve-profile.sh (the Makefile's serve-* targets), with and without a (fake) GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serving.engine.exitcodes import ExitCode
from tests.engine.running import REPO_ROOT, free_tcp_port

SCRIPT = REPO_ROOT / "scripts" / "serve-profile.sh"
SERVING = str(Path(sys.executable).parent / "serving")


def _fake_nvidia_smi(folder: Path, lines: list[str]) -> Path:
    folder.mkdir()
    tool = folder / "nvidia-smi"
    body = "".join(f"echo '{line}'\n" for line in lines)
    tool.write_text(f"#!/bin/sh\n{body}")
    tool.chmod(0o755)
    return folder


def _run(
    tmp_path: Path, *args: str, path_prefix: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    search = "/usr/bin:/bin"
    if path_prefix is not None:
        search = f"{path_prefix}:{search}"
    environment = {
        "PATH": search,
        "HOME": str(tmp_path),
        "SERVING": SERVING,
        "SERVING_CACHE_DIR": os.environ.get("SERVING_CACHE_DIR", str(tmp_path / "cache")),
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_a_gpu_it_stops_and_says_what_the_model_needs(tmp_path: Path) -> None:
    result = _run(tmp_path, "llama-3.1-70b", "", "")
    assert result.returncode == ExitCode.NO_GPU
    assert "no NVIDIA GPU found" in result.stderr
    assert "llama-3.1-70b needs at least 4x h100-sxm with BF16 or 2x h100-sxm with FP8" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(tmp_path, "llama-9", "", "")
    assert result.returncode == ExitCode.USAGE
    assert "unknown model profile 'llama-9'" in result.stderr


def test_detected_gpus_are_mapped_and_counted(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", ["NVIDIA H100 80GB HBM3, 81559 MiB"] * 2)
    result = _run(tmp_path, "llama-3.1-8b", "", "", path_prefix=smi, DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert "llama-3.1-8b on 2x h100-sxm" in result.stderr
    assert "--tensor-parallel-size 1 --data-parallel-size 2" in result.stdout


def test_overrides_win_over_detection(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", ["NVIDIA L4, 23034 MiB"])
    result = _run(tmp_path, "llama-3.1-70b", "h100", "2", path_prefix=smi, DRY_RUN="1")
    # 70B BF16 on the 2 H100s given: the launcher's dry run refuses, exit 3, with suggestions.
    assert result.returncode == ExitCode.DOES_NOT_FIT
    assert "2x h100-sxm with FP8 (TP 2)" in result.stderr


def test_a_full_run_reaches_the_launcher_and_reports_missing_weights(tmp_path: Path) -> None:
    smi = _fake_nvidia_smi(tmp_path / "bin", ["NVIDIA H100 80GB HBM3, 81559 MiB"])
    engine_port, port = free_tcp_port(), free_tcp_port()
    result = _run(
        tmp_path,
        "mistral-7b",
        "",
        "",
        path_prefix=smi,
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        SERVING_CACHE_DIR=str(tmp_path / "c"),
        ENGINE_PORT=str(engine_port),
        PORT=str(port),
    )
    assert result.returncode == ExitCode.MODEL_UNAVAILABLE, result.stderr
    assert "not in the local Hugging Face cache" in result.stderr
    config = (tmp_path / "c" / "gateway-mistral-7b.yaml").read_text()
    assert "model: mistral-7b" in config
    assert f"base_url: http://127.0.0.1:{engine_port}/v1" in config and f"port: {port}" in config
