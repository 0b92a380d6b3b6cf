"""One source of profile data: helm/serving/files/profiles.yaml is generated from the catalog by
scripts/gen-chart-profiles.py, and what the chart renders agrees with the catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serving.catalog.gpus import match_gpu
from serving.catalog.profiles import get_profile, load_profiles
from tests.helm.chartkit import (
    PROFILES,
    REPO,
    Obj,
    Renderer,
    arg_value,
    chart_profiles,
    engine_workloads,
    example_files,
    server_args,
)

GENERATOR = REPO / "scripts" / "gen-chart-profiles.py"


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _variants() -> list[tuple[str, str | None, Obj]]:
    """(profile, variant, resolved fields) for every chart profile and variant."""
    out: list[tuple[str, str | None, Obj]] = []
    for name, body in chart_profiles().items():
        base = {k: v for k, v in body.items() if k != "variants"}
        out.append((name, None, base))
        for variant, overrides in body["variants"].items():
            out.append((name, variant, {**base, **overrides}))
    return out


def test_chart_profiles_are_generated_from_the_catalog() -> None:
    proc = _generate("--check")
    assert proc.returncode == 0, proc.stderr


def test_drift_check_fails_on_a_hand_edit(tmp_path: Path) -> None:
    """Negative control: the check above really compares the file."""
    edited = tmp_path / "profiles.yaml"
    edited.write_text(PROFILES.read_text().replace("kvCacheDtype: fp8", "kvCacheDtype: auto", 1))
    proc = _generate("--check", "--output", str(edited))
    assert proc.returncode == 1
    assert "differs from the catalog" in proc.stderr
    assert "gen-chart-profiles.py" in proc.stderr


@pytest.mark.parametrize(("name", "variant", "fields"), _variants(), ids=lambda v: str(v))
def test_profile_fields_come_from_the_catalog(name: str, variant: str | None, fields: Obj) -> None:
    profile = get_profile(name)
    precision = variant if variant in profile.weights else profile.precision
    weights = profile.weights_for(precision)
    assert fields["hfRepo"] == weights.repo
    assert fields["revision"] == weights.revision
    assert fields["servedName"] == profile.served_model_name
    assert fields["gated"] is profile.gated
    assert fields["weightPatterns"] == list(weights.patterns)
    assert fields["toolCallParser"] == (profile.engine.tool_call_parser or "")


@pytest.mark.parametrize(("name", "variant", "fields"), _variants(), ids=lambda v: str(v))
def test_gpu_products_support_the_profile_settings(
    name: str, variant: str | None, fields: Obj
) -> None:
    """Every listed GPU is a catalog GPU; an FP8 KV cache only goes to GPUs with FP8 (the drift
    that let 405B FP8 schedule on A100-80GB)."""
    assert fields["gpuProducts"], f"{name} {variant}: no GPU fits"
    for label in fields["gpuProducts"]:
        gpu = match_gpu(label) or match_gpu(label.replace("-", " "))
        assert gpu is not None, label
        assert gpu.max_per_node >= fields["gpusPerPod"]
        if fields["kvCacheDtype"] == "fp8":
            assert gpu.fp8, f"{name} {variant}: FP8 KV cache on {label}"


def test_405b_fp8_never_schedules_on_a100() -> None:
    products = chart_profiles()["llama-3.1-405b"]["gpuProducts"]
    assert "NVIDIA-H100-80GB-HBM3" in products
    assert not [p for p in products if "A100" in p]


@pytest.mark.parametrize("example", example_files())
def test_every_engine_pins_the_catalog_revision(chart: Renderer, example: str) -> None:
    revisions = {w.repo: w.revision for p in load_profiles().values() for w in p.weights.values()}
    for workload in engine_workloads(chart.render(example)):
        args = server_args(workload)
        repo = arg_value(args, "--model") or ""
        assert arg_value(args, "--revision") == revisions.get(repo, "main")
