"""The chart passes `helm lint --strict`, renders every example, validates against the
Kubernetes 1.29 and 1.31 schemas, and its values schema is generated from values.yaml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helm.chartkit import CHART, EXAMPLES, REPO, Renderer, example_files, run_helm

K8S_VERSIONS = ["1.29.0", "1.31.0"]
# kubernetes-validate has no schemas for these; tests/helm/test_helm_*.py check their fields.
CRD_KINDS = {"LeaderWorkerSet", "ServiceMonitor", "PodMonitor", "ScaledObject"}
REQUIRED_EXAMPLES = {
    "llama-3.1-8b.yaml",
    "llama-3.1-8b-airgapped.yaml",
    "custom-model.yaml",
    "llama-3.1-70b.yaml",
    "llama-3.1-405b-fp8.yaml",
    "llama-3.1-405b-bf16-multinode.yaml",
    "mistral-7b.yaml",
    "mixtral-8x7b.yaml",
    "gateway-hosted.yaml",
}


def test_helm_is_a_supported_version(helm_bin: str) -> None:
    out = run_helm("version", "--short").stdout
    match = re.match(r"v(\d+)\.(\d+)", out)
    assert match, out
    assert (int(match[1]), int(match[2])) >= (3, 14), f"helm {out.strip()} is too old"


def test_every_required_example_exists() -> None:
    assert set(example_files()) >= REQUIRED_EXAMPLES


def test_lint_strict_with_default_values(helm_bin: str) -> None:
    proc = run_helm("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("example", example_files())
def test_lint_strict_with_example(helm_bin: str, example: str) -> None:
    proc = run_helm("lint", "--strict", str(CHART), "-f", str(EXAMPLES / example))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _kubernetes_validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "-k", version, "--strict", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _assert_valid(proc: subprocess.CompletedProcess[str]) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "ERROR" not in out, out
    for line in out.splitlines():
        if line.startswith("WARN"):
            kind = re.search(r"schema for kind (\w+)", line)
            assert kind and kind[1] in CRD_KINDS, f"unexpected warning: {line}"
        else:
            assert line.startswith("INFO"), f"unexpected output: {line}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("example", [None, *example_files()])
def test_rendered_objects_pass_kubernetes_validate(
    chart: Renderer, tmp_path: Path, example: str | None, version: str
) -> None:
    rendered = chart.render(example) if example else chart.render()
    assert rendered.objects, "nothing rendered"
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.text)
    proc = _kubernetes_validate(path, version)
    _assert_valid(proc)
    passed = proc.stdout.count("INFO")
    expected = sum(1 for o in rendered.objects if o["kind"] not in CRD_KINDS)
    assert passed == expected, f"{passed} objects validated, expected {expected}:\n{proc.stdout}"


def test_kubernetes_validate_rejects_a_bad_object(chart: Renderer, tmp_path: Path) -> None:
    """Negative control: the validation above really rejects an invalid field."""
    text = chart.render().text.replace(
        "revisionHistoryLimit: 3", "revisionHistoryLimit: 3\n  bogusField: 1", 1
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = _kubernetes_validate(path, K8S_VERSIONS[-1])
    assert proc.returncode != 0
    assert "bogusField" in proc.stdout


def test_values_schema_is_generated_from_values_yaml() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-values-schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_values_schema_rejects_an_unknown_key(chart: Renderer) -> None:
    message = chart.error(values={"engines": {"runtimeClass": "nvidia"}})
    assert "runtimeClass" in message
    assert "additional properties" in message


def test_values_schema_rejects_a_wrong_type(chart: Renderer) -> None:
    message = chart.error(
        values={"models": [{"name": "m", "profile": "llama-3.1-8b", "tensorParallel": "two"}]}
    )
    assert "tensorParallel" in message


def test_packaged_chart_renders_the_same(chart: Renderer, tmp_path: Path) -> None:
    """The files the templates read (profiles, dashboards) travel in the package."""
    proc = run_helm("package", str(CHART), "--destination", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (package,) = tmp_path.glob("serving-*.tgz")
    example = str(EXAMPLES / "llama-3.1-8b.yaml")
    rendered = run_helm("template", "rel", str(package), "--namespace", "serving", "-f", example)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == chart.render("llama-3.1-8b.yaml").text
