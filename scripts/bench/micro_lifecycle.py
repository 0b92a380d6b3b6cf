"""The lifecycle middleware's own cost per request, in process: `Lifecycle` around an app that
does what the endpoint does to the record (route, target, usage, a first byte) and answers a
small JSON body, driven by direct ASGI calls (no sockets), microseconds per request, best of 5.
For before/after comparisons of changes to lifecycle.py, metrics.py and logs.py; with
`--access-log text|json` the access line is formatted and written (to /dev/null) as at the
default `info` level.

    python scripts/bench/micro_lifecycle.py [--requests 20000] [--access-log text|json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any

from serving.gateway import canonical as c
from serving.gateway import logs
from serving.gateway.app import dialect_for, request_id_header
from serving.gateway.lifecycle import SCOPE_KEY, Lifecycle, RequestRecord
from serving.gateway.metrics import Metrics

PATHS = ("/v1/chat/completions", "/v1/messages", "/v1beta/models/m:generateContent")


async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    record: RequestRecord = scope[SCOPE_KEY]
    record.route, record.target = "m", "fake/m"
    record.usage = c.Usage(input_tokens=20, output_tokens=6)
    record.first_byte()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(requests: int) -> float:
    app = Lifecycle(inner, metrics=Metrics(), dialect_for=dialect_for, header_for=request_id_header)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    scopes = [{"type": "http", "method": "POST", "path": p, "headers": []} for p in PATHS]
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(requests):
            await app(dict(scopes[i % 3]), receive, send)
        best = min(best, time.perf_counter() - t0)
    return best / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--access-log", choices=["off", "text", "json"], default="off")
    args = parser.parse_args()
    if args.access_log != "off":
        logs.configure("info", args.access_log)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    us = asyncio.run(run(args.requests))
    print(json.dumps({"access_log": args.access_log, "lifecycle_us_per_request": round(us, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
