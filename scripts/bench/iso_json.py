"""JSON in isolation: stdlib json vs orjson, parsing each dialect's benchmark request and
serialising a chat completion and a stream chunk, in microseconds per operation (best of 5).
The gateway parses every request body once (deps.read_json) and, when translating, builds the
upstream body and the client's answer. Writes reports/bench/iso-json.json.

    python scripts/bench/iso_json.py
"""

from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path
from typing import Any

import orjson
import targets as t
import upstream
from common import REPORTS, versions, write_json


def best_us(fn: Any, number: int = 20000) -> float:
    return round(min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPORTS / "iso-json.json")
    args = parser.parse_args()
    cases: dict[str, bytes] = {f"parse {d} request": t.request(d, "json").body for d in t.DIALECTS}
    cases["parse chat completion"] = upstream.completion("m")
    chunk = upstream.stream("m", 6).split(b"\n\n")[1][6:]
    cases["parse stream chunk"] = chunk
    rows = []
    for name, raw in cases.items():
        obj = json.loads(raw)
        rows.append(
            {
                "case": name,
                "bytes": len(raw),
                "stdlib_loads_us": best_us(lambda raw=raw: json.loads(raw)),
                "orjson_loads_us": best_us(lambda raw=raw: orjson.loads(raw)),
                "stdlib_dumps_us": best_us(lambda obj=obj: json.dumps(obj).encode()),
                "orjson_dumps_us": best_us(lambda obj=obj: orjson.dumps(obj)),
            }
        )
        print(rows[-1], flush=True)
    write_json(args.out, {"versions": versions("orjson"), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
