"""JSON on the gateway's hot path: orjson, with the standard library behind it.

orjson parses and writes the small bodies and stream events a request carries 4-10x faster
(docs/benchmarks.md, the isolation table; a translated 6-chunk stream writes about ten
events). What orjson refuses, `json` still does, so nothing changes for the rare body that
needs it: NaN and Infinity in, integers over 64 bits and non-string keys either way. Output
is compact and keeps non-ASCII text as it is, as `json.dumps(obj, separators=(",", ":"),
ensure_ascii=False)` wrote it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(raw: bytes | str) -> Any:
    """Raises ValueError on malformed JSON, as `json.loads` does."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumpb(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a non-str key, a surrogate
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(obj: Any) -> str:
    return dumpb(obj).decode()
