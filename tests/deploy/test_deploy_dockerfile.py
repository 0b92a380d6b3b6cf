"""deploy/Dockerfile: multi-stage, slim and non-root; the final stage installs only the base
package from wheels (no build tools, no engine extras). No container engine runs here, so the
file is checked statically."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
IGNORE = REPO / "deploy" / "Dockerfile.dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def test_multi_stage_on_python_311_slim() -> None:
    args = dict(a.split("=", 1) for i, a in _instructions() if i == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    stages = _stages()
    assert len(stages) == 2
    assert [s[0][1] for s in stages] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS gateway"]


def test_final_stage_runs_as_non_root() -> None:
    final = _stages()[-1]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [a for i, a in final if i == "ENTRYPOINT"] == ['["serving"]']
    cmd = [a for i, a in final if i == "CMD"][-1]
    assert '"gateway"' in cmd and '"/etc/serving/gateway.yaml"' in cmd


def test_final_stage_has_no_build_tools_or_sources() -> None:
    final = " ".join(a for _, a in _stages()[-1])
    for tool in ("gcc", "build-essential", "apt-get install", "COPY serving", "git "):
        assert tool not in final
    assert not [a for i, a in _stages()[-1] if i in ("COPY", "ADD")]


def test_installs_only_the_base_package_from_wheels() -> None:
    final_runs = [a for i, a in _stages()[-1] if i == "RUN" and "pip install" in a]
    assert len(final_runs) == 1
    install = final_runs[0]
    assert "--no-index" in install and "--find-links=/wheels" in install
    assert re.search(r"pip install .*\bserving$", install)
    assert "[" not in install.split("pip install", 1)[1]  # no extras (engine-gpu, engine-cpu, ...)
    build = " ".join(a for i, a in _stages()[0] if i == "RUN")
    assert "pip wheel --wheel-dir /wheels ." in build and "[" not in build


def test_build_context_is_minimal() -> None:
    lines = [ln for ln in IGNORE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!serving/"} <= set(lines)
    copied = [a.split()[0] for i, a in _instructions() if i == "COPY" and "--from" not in a]
    assert copied == ["pyproject.toml", "serving"]
    for path in ("pyproject.toml", "README.md", "serving"):
        assert (REPO / path).exists()
