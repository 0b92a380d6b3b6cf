"""Servers and app layers in isolation: the server process's CPU per request for the same
fixed JSON answer under uvicorn (httptools + uvloop, as the gateway runs) and granian (its Rust
HTTP stack, ASGI, one worker), each as a raw ASGI app, a Starlette route and a FastAPI route
with the gateway's middleware count (one pure-ASGI middleware). Load from aiohttp at several
concurrencies. Writes reports/bench/iso-servers.json.

    python scripts/bench/iso_servers.py [--requests 2000] [--concurrency 1,64]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import load
from common import (
    HERE,
    REPORTS,
    cpu_seconds,
    free_port,
    load_average,
    process_tree,
    start,
    stop,
    versions,
    wait_ready,
    write_json,
)

BODY = b'{"id":"x","object":"chat.completion","choices":[]}'


def raw_app() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    return app


class PassThrough:
    """A pure-ASGI middleware that does what the gateway's lifecycle does to every response:
    adds one header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", b"r")]
            await send(message)

        await self.app(scope, receive, sending)


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def chat(request: Request) -> Response:
        await request.body()
        return Response(BODY, media_type="application/json")

    routes = [Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(PassThrough)])


def fastapi_app() -> Any:
    # FastAPI reads the endpoint's annotations at run time: no string annotations here
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    app = FastAPI()
    app.add_middleware(PassThrough)

    async def chat(request: Request) -> Response:
        await request.body()
        return Response(BODY, media_type="application/json")

    chat.__annotations__ = {"request": Request, "return": Response}
    app.post("/v1/chat/completions")(chat)
    return app


APPS = {"raw": raw_app, "starlette": starlette_app, "fastapi": fastapi_app}


def serve(server: str, app: str, port: int) -> None:
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            APPS[app](),
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            http="httptools",
            loop="uvloop",
        )
    else:
        from granian.constants import Interfaces, Loops
        from granian.server import Server

        target = f"{Path(__file__).stem}:{app}_app"
        Server(
            target,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            log_enabled=False,
            factory=True,
        ).serve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--serve", nargs=3, metavar=("SERVER", "APP", "PORT"), help="internal")
    parser.add_argument("--out", type=Path, default=REPORTS / "iso-servers.json")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    report: dict[str, Any] = {
        "versions": versions("uvicorn", "httptools", "uvloop", "granian", "starlette", "fastapi"),
        "load_average_start": load_average(),
        "cells": [],
    }
    servers = ["uvicorn"] + (["granian"] if shutil.which("granian") else [])
    for server in servers:
        for app in APPS:
            port = free_port()
            proc = start(
                [sys.executable, str(HERE / "iso_servers.py"), "--serve", server, app, str(port)],
                env={"PYTHONPATH": str(HERE)},
            )
            try:
                wait_ready(f"http://127.0.0.1:{port}/", proc=proc)
                pids = process_tree(proc.pid)
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                for c in (int(x) for x in args.concurrency.split(",")):
                    load.drive(url, b"{}", {}, requests=200, concurrency=c, seconds=10)
                    cpu0 = cpu_seconds(pids)
                    run = load.drive(
                        url, b"{}", {}, requests=args.requests, concurrency=c, seconds=30
                    )
                    row = {
                        "server": server,
                        "app": app,
                        "concurrency": c,
                        "requests": run.done,
                        "errors": run.errors,
                        "cpu_ms_per_request": round(
                            (cpu_seconds(pids) - cpu0) * 1000 / max(1, run.done), 4
                        ),
                        **load.summary(run),
                    }
                    report["cells"].append(row)
                    print({k: row[k] for k in ("server", "app", "concurrency", "cpu_ms_per_request",
                                               "p50_ms", "errors")}, flush=True)  # fmt: skip
            finally:
                stop([proc])
    report["load_average_end"] = load_average()
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
