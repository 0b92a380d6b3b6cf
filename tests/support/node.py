"""node and the pinned JS packages of tests/conformance/node, shared by every JS test module.

The packages are installed with `npm ci` (exactly what package-lock.json pins) whenever one of
package.json's dependencies is missing from node_modules, so a clone, or a checkout that
gained a dependency since its last install, gets them before the first JS test. Without node or
npm the tests fail: they are part of the contract."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent.parent / "conformance" / "node"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; the JS SDK conformance tests need node 20+ and npm")
    return path


def missing_packages() -> list[str]:
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    modules = NODE_DIR / "node_modules"
    return [name for name in wanted if not (modules / name / "package.json").is_file()]


def node_with_packages() -> str:
    node, npm = _tool("node"), _tool("npm")
    if missing_packages():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
        still = missing_packages()
        if still:
            pytest.fail(f"npm ci left these packages missing: {', '.join(still)}")
    return node
