"""node and the pinned JS packages of tests/conformance/node (installed with `npm ci` when
node_modules is missing). Without node or npm the tests fail: they are part of the contract."""

from __future__ import annotations

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


def node_with_packages() -> str:
    node, npm = _tool("node"), _tool("npm")
    if not (NODE_DIR / "node_modules" / "ai").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300
        )
    return node
