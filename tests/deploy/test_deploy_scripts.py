"""The helper scripts the deploy tests and `make tools` rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args], capture_output=True, text=True, check=False, timeout=60, cwd=REPO, env=env
    )


def test_scripts_parse() -> None:
    for name in ("fetch-helm.sh", "ci-system-deps.sh"):
        proc = _bash("-n", str(REPO / "scripts" / name))
        assert proc.returncode == 0, proc.stderr


def test_fetch_helm_prefers_helm_on_path(tmp_path: Path) -> None:
    helm = shutil.which("helm")
    assert helm, "helm is not on PATH: run `make tools`"
    tools = tmp_path / "tools"
    env = {**os.environ, "PATH": f"{Path(helm).parent}:{os.environ['PATH']}"}
    proc = _bash("scripts/fetch-helm.sh", str(tools), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "already on PATH" in proc.stdout
    assert not tools.exists()  # nothing fetched


def test_ci_system_deps_is_a_no_op_when_present() -> None:
    assert shutil.which("docker-compose"), "run `bash scripts/ci-system-deps.sh`"
    proc = _bash("scripts/ci-system-deps.sh")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "==> system test dependencies present"
