"""The floor of a proxy on the gateway's own stack: a raw ASGI app under uvicorn (httptools,
uvloop) that forwards each POST to the upstream over the gateway's own HTTP/1.1 client
(serving/gateway/upstreams/http1.py) and relays the answer chunk by chunk, as it comes. No
authentication, parsing, routing, metrics or logging: what it adds over `direct` is what
uvicorn and that client alone cost, so serving's distance from it is
the gateway's own work. The matrix runs it as the target `floor` (OpenAI pass-through only).

    python scripts/bench/floor_proxy.py --port PORT --upstream http://127.0.0.1:UP
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from serving.gateway.upstreams.http1 import Pool

Scope = dict[str, Any]


def build_app(upstream: str) -> Any:
    pool = Pool(connect=5, read=60)

    async def lifespan(receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await pool.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["method"] != "POST":  # readiness: the matrix waits on GET /health
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        url = upstream + scope["path"]
        headers = {"content-type": "application/json"}
        resp = await pool.request("POST", url, headers, body)
        try:
            ctype = resp.headers.get("content-type", "application/json").encode()
            start = {"type": "http.response.start", "status": resp.status}
            await send({**start, "headers": [(b"content-type", ctype)]})
            async for chunk in resp.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            resp.release()
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
