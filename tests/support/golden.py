"""Golden-file cases: each JSON file holds `kind`, `input` and `expected`, and `kind` names the
conversion under test. Nothing rewrites a golden: a changed one is a reviewed change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Kinds = dict[str, Callable[[Any], Any]]


def cases(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.json"))
    assert found, f"no golden cases found in {folder}"
    return found


def check(path: Path, kinds: Kinds) -> None:
    case = json.loads(path.read_text())
    assert kinds[case["kind"]](case["input"]) == case["expected"]


def check_every_kind_used(folder: Path, kinds: Kinds) -> None:
    used = {json.loads(p.read_text())["kind"] for p in cases(folder)}
    assert used == set(kinds)
