#!/usr/bin/env python3
"""Generate helm/serving/values.schema.json from the commented values.yaml (and profiles.yaml).

The schema follows values.yaml: every key's type comes from its default, its description from the
`# -- text` comment above it, and `# @schema {json}` comments add JSON-schema keywords (enums,
item schemas). Objects are closed (`additionalProperties: false`) so a typo in a key fails
`helm install` at once; an empty `{}` default stays open, and a map annotated with
`additionalProperties` is typed by that annotation alone (its default keys are only examples).

A model entry (`models[*]`) is described by `definitions/model`: the profile fields, typed from
helm/serving/files/profiles.yaml and described by its header table, plus the fields only a values
entry has (MODEL_FIELDS below).

Usage:
  python scripts/gen-values-schema.py           write the schema
  python scripts/gen-values-schema.py --check   exit 1 if the committed schema is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "serving"
VALUES = CHART / "values.yaml"
PROFILES = CHART / "files" / "profiles.yaml"
SCHEMA = CHART / "values.schema.json"

Schema = dict[str, Any]

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-/]+):(\s|$)")
_ITEM = re.compile(r"^(?P<indent>\s*)- ")
_PROFILE_FIELD = re.compile(r"^#\s{3}(?P<key>[a-zA-Z]+)\s{2,}(?P<text>.+)$")

# Fields a model entry has beyond the profile fields.
MODEL_FIELDS: dict[str, Schema] = {
    "name": {
        "type": "string",
        "description": "DNS label naming the engine's objects and its gateway upstream.",
        "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$",
        "maxLength": 30,
    },
    "profile": {
        "type": "string",
        "description": "A profile from files/profiles.yaml; empty for a fully custom model.",
    },
    "variant": {"type": "string", "description": "A variant of the profile (e.g. bf16, fp8)."},
    "replicas": {
        "type": "integer",
        "minimum": 0,
        "description": "Replicas (groups, for multi-node) when autoscaling is off.",
    },
    "strategy": {"enum": ["Recreate", "RollingUpdate"], "description": "Deployment strategy."},
    "autoscaling": {
        "$ref": "#/properties/engines/properties/autoscaling",
        "description": "Overrides of engines.autoscaling for this model.",
    },
    "fallbacks": {
        "type": "array",
        "description": "Further targets of the model's gateway route, tried in order.",
        "items": {
            "type": "object",
            "required": ["upstream", "model"],
            "properties": {
                "upstream": {"type": "string"},
                "model": {"type": "string"},
                "context_window": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
        },
    },
    "aliases": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Other model names the route answers to.",
    },
    "route": {"type": "boolean", "description": "Generate a gateway route for this model."},
    "cacheClaim": {
        "type": "string",
        "description": "Existing claim holding this model's weights (overrides weightsCache).",
    },
    "revision": {"type": "string", "description": "Hugging Face revision (commit) to pin."},
    "image": {
        "type": "object",
        "properties": {"repository": {"type": "string"}, "tag": {"type": "string"}},
        "additionalProperties": False,
        "description": "Engine image override.",
    },
    "extraArgs": {"type": "array", "items": {"type": "string"}, "description": "Extra vLLM args."},
    "extraEnv": {"type": "array", "items": {"type": "object"}, "description": "Extra env vars."},
    "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
    "tolerations": {"type": "array", "items": {"type": "object"}},
    "affinity": {"type": "object", "description": "Replaces engines.affinity for this model."},
    "gpuAffinity": {"enum": ["required", "preferred", "off"]},
}


def _type_of(value: Any) -> Schema:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        items = _type_of(value[0]) if value else {}
        if items.get("type") == "object":
            items = {"type": "object"}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {}


def parse_comments(text: str) -> dict[str, tuple[str, Schema]]:
    """Map dotted key paths to (description, extra schema) from the comments above each key."""
    found: dict[str, tuple[str, Schema]] = {}
    stack: list[tuple[int, str | None]] = []  # (indent, key); None marks a list item
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        if not stripped:
            pending = []
            continue
        item = _ITEM.match(line)
        match = _KEY.match(line)
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent and not (item and stack[-1][0] < indent):
            stack.pop()
        if item:
            stack.append((indent, None))
            pending = []
            continue
        if match is None:
            pending = []
            continue
        key = match.group("key")
        if all(k is not None for _, k in stack):
            path = ".".join([k for _, k in stack if k is not None] + [key])
            found[path] = _read_block(pending, path)
        stack.append((indent, key))
        pending = []
    return found


def _read_block(lines: list[str], path: str) -> tuple[str, Schema]:
    desc: list[str] = []
    extra: Schema = {}
    in_desc = False
    for raw in lines:
        body = raw[1:].strip()
        if body.startswith("@schema"):
            try:
                extra.update(json.loads(body[len("@schema") :]))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"values.yaml: bad @schema JSON above {path}: {exc}") from exc
            in_desc = False
        elif body.startswith("-- "):
            desc = [body[3:]]
            in_desc = True
        elif in_desc:
            desc.append(body)
    return " ".join(desc), extra


def build(value: Any, path: str, notes: dict[str, tuple[str, Schema]]) -> Schema:
    desc, extra = notes.get(path, ("", {}))
    schema = _type_of(value)
    if isinstance(value, dict):
        if "additionalProperties" in extra:
            pass  # an annotated map: its entries are free-form, the annotation types them
        elif value:
            schema["properties"] = {
                key: build(child, f"{path}.{key}" if path else key, notes)
                for key, child in value.items()
            }
            schema["additionalProperties"] = False
        else:
            schema["additionalProperties"] = True
    elif value is not None and not isinstance(value, list):
        schema["default"] = value
    if desc:
        schema["description"] = desc
    if "enum" in extra or "$ref" in extra:
        schema.pop("type", None)
    schema.update(extra)
    return schema


def model_def(profiles_text: str) -> Schema:
    """definitions/model: profile fields (typed from the first profile) plus MODEL_FIELDS."""
    profiles = yaml.safe_load(profiles_text)
    described = {}
    for line in profiles_text.splitlines():
        match = _PROFILE_FIELD.match(line)
        if match:
            described[match.group("key")] = match.group("text").strip()
    sample = next(iter(profiles.values()))
    props: dict[str, Schema] = {}
    for key, value in sample.items():
        if key == "variants":
            continue
        prop = _type_of(value)
        if key in described:
            prop["description"] = described[key]
        props[key] = prop
    props.update(MODEL_FIELDS)
    return {
        "type": "object",
        "required": ["name"],
        "properties": dict(sorted(props.items())),
        "additionalProperties": False,
    }


def generate() -> str:
    values_text = VALUES.read_text()
    schema: Schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the serving chart",
        "description": "Generated by scripts/gen-values-schema.py from values.yaml; do not edit.",
    }
    schema.update(build(yaml.safe_load(values_text), "", parse_comments(values_text)))
    schema["definitions"] = {"model": model_def(PROFILES.read_text())}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the schema is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = SCHEMA.read_text() if SCHEMA.exists() else ""
        if current != text:
            fix = "run python scripts/gen-values-schema.py"
            print(f"{SCHEMA.relative_to(ROOT)} is out of date: {fix}", file=sys.stderr)
            return 1
        print(f"{SCHEMA.relative_to(ROOT)} is current")
        return 0
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
