"""Hypothesis strategies for the JSON Schemas in the gateway's OpenAPI document.

hypothesis-jsonschema (0.23, the latest) relies on Hypothesis internals that current
Hypothesis (6.15x) no longer has, so this small generator covers what pydantic emits: `$ref`,
`anyOf`/`oneOf`/`allOf`, `const`/`enum`, objects (required always, optional sometimes),
arrays, strings, numbers with bounds, booleans, null, and untyped values. Sizes are kept small
and depth is bounded, so a fuzz run stays fast.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_MAX_DEPTH = 6
_JSON_LEAF = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6)
_ANY_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)


def from_schema(
    schema: dict[str, Any], root: dict[str, Any] | None = None
) -> st.SearchStrategy[Any]:
    return _strategy(schema, root or schema, 0)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def _strategy(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root)
        return st.deferred(lambda: _strategy(target, root, depth + 1))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([_strategy(s, root, depth) for s in schema[key]])
    if "allOf" in schema:
        return _strategy(schema["allOf"][0], root, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_strategy({**schema, "type": k}, root, depth) for k in kind])
    if kind == "object" or "properties" in schema:
        return _object(schema, root, depth)
    if kind == "array":
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 2), low + 2)
        if depth >= _MAX_DEPTH:
            high = low
        return st.lists(_strategy(items, root, depth + 1), min_size=low, max_size=high)
    if kind == "string":
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=max(low, 12))
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return _ANY_JSON if depth < _MAX_DEPTH else _JSON_LEAF


def _number(schema: dict[str, Any], kind: str) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if kind == "integer":
        low = None if low is None else int(low) + (1 if "exclusiveMinimum" in schema else 0)
        high = None if high is None else int(high) - (1 if "exclusiveMaximum" in schema else 0)
        return st.integers(min_value=low, max_value=high)
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min="exclusiveMinimum" in schema,
        exclude_max="exclusiveMaximum" in schema,
        allow_nan=False,
        allow_infinity=False,
    )


def _object(schema: dict[str, Any], root: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    if depth >= _MAX_DEPTH:
        props = {k: v for k, v in props.items() if k in required}
    fields = {k: _strategy(v, root, depth + 1) for k, v in props.items()}
    needed = st.fixed_dictionaries({k: fields[k] for k in props if k in required})
    optional = {k: fields[k] for k in props if k not in required}
    extra = st.fixed_dictionaries({}, optional=optional) if optional else st.just({})
    return st.tuples(needed, extra).map(lambda t: {**t[0], **t[1]})
