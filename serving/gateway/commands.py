"""`serving gateway` and `serving config check`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from serving.gateway.settings import ConfigError, Settings, load_settings


def register(subparsers: Any) -> None:
    gw = subparsers.add_parser("gateway", help="run the API-parity gateway")
    gw.add_argument("--config", required=True, help="gateway YAML config file")
    gw.add_argument("--host", help="listen address (default: the config's server.host)")
    gw.add_argument("--port", type=int, help="listen port (default: the config's server.port)")
    gw.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    gw.set_defaults(func=run_gateway)

    config = subparsers.add_parser("config", help="work with gateway config files")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a gateway config and explain problems")
    check.add_argument("file")
    check.set_defaults(func=check_config)


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_gateway(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    import uvicorn

    from serving.gateway.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    uvicorn.run(app, host=host, port=port, log_level=args.log_level, access_log=False)
    return 0


def check_config(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    if settings is None:
        return 1
    print(f"{args.file}: ok — {len(settings.upstreams)} upstreams, {len(settings.routes)} routes")
    for route in settings.routes:
        chain = " -> ".join(f"{t.upstream}/{t.model}" for t in route.targets)
        aliases = f" (aliases: {', '.join(route.aliases)})" if route.aliases else ""
        print(f"  {route.model}{aliases}: {chain}")
    return 0
