"""What each target can serve, resolved once when the app is built.

A target's own `capabilities` (and `context_window`) win. Otherwise a local target whose model
is a catalog profile's served name takes the profile's: tools when the engine is launched with
a tool-call parser, no vision or audio (the catalog's models read text), structured output
(vLLM's guided decoding), and the profile's default context (what `serving launch` serves). A
hosted target takes policy/capabilities.yaml's row for its model. Anything still unknown is
assumed able: the target is tried and its own refusal moves the chain on, as before.

The `prefill` capability (continuing a broken stream) is the streams setting `continuation`,
read there, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from serving.catalog.errors import CatalogError
from serving.catalog.profiles import Profile, load_profiles
from serving.gateway.settings import Need, Settings, Target

TABLE_FILE = Path(__file__).with_name("capabilities.yaml")
NEEDS: tuple[Need, ...] = ("tools", "vision", "audio", "json_schema")
# How each need reads in a client's error message.
DESCRIBED: dict[Need, str] = {
    "tools": "tool calling",
    "vision": "image input",
    "audio": "audio",
    "json_schema": "JSON-schema structured output",
}


@dataclass(frozen=True, slots=True)
class Able:
    """One target's resolved capabilities: the needs it cannot serve, and its window."""

    lacks: frozenset[Need]
    context_window: int | None
    source: str  # "target", "profile:NAME", "table:KEY" or "unknown"


def load_table(path: Path = TABLE_FILE) -> dict[str, dict[str, object]]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the capability table must map model -> capabilities")
    return {str(k): dict(v) for k, v in data.items()}


def _profile_row(profile: Profile) -> dict[str, object]:
    engine = profile.engine
    tools = engine.tool_call_parser is not None or "--tool-call-parser" in engine.extra_args
    return {
        "tools": tools,
        "vision": False,
        "audio": False,
        "json_schema": True,
        "context_window": profile.default_context,
    }


def _table_row(table: dict[str, dict[str, object]], model: str) -> tuple[str, dict[str, object]]:
    if model in table:
        return model, table[model]
    best = max((k for k in table if model.startswith(k)), key=len, default=None)
    return (best, table[best]) if best is not None else ("", {})


class CapabilityTable:
    def __init__(self, settings: Settings, table: dict[str, dict[str, object]]) -> None:
        local = {u.name: u.locality == "local" for u in settings.upstreams}
        try:
            profiles = {p.served_model_name: p for p in load_profiles().values()}
        except CatalogError:
            profiles = {}
        self._able: dict[str, Able] = {}
        for route in settings.routes:
            for target in route.targets:
                self._able[target.label] = _resolve(target, local[target.upstream], profiles, table)

    def of(self, target: Target) -> Able:
        return self._able[target.label]

    def missing(self, target: Target, needs: Iterable[Need]) -> list[Need]:
        lacks = self._able[target.label].lacks
        return [n for n in NEEDS if n in lacks and n in set(needs)]


def _resolve(
    target: Target,
    local: bool,
    profiles: dict[str, Profile],
    table: dict[str, dict[str, object]],
) -> Able:
    row: dict[str, object] = {}
    source = "unknown"
    if local and target.model in profiles:
        row, source = _profile_row(profiles[target.model]), f"profile:{profiles[target.model].name}"
    elif not local:
        key, row = _table_row(table, target.model)
        source = f"table:{key}" if key else source
    declared = target.capabilities
    lacks: set[Need] = set()
    for need in NEEDS:
        own = getattr(declared, need)
        value = own if own is not None else row.get(need)
        if value is False:
            lacks.add(need)
    if any(getattr(declared, n) is not None for n in NEEDS):
        source = "target" if source == "unknown" else f"target+{source}"
    window = target.context_window
    if window is None and isinstance(row.get("context_window"), int):
        window = int(str(row["context_window"]))
    return Able(frozenset(lacks), window, source)
