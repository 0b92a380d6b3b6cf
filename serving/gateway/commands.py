"""`serving gateway`, `serving config check` and `serving drill`."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Any

from serving.gateway.policy.audit import config_warnings
from serving.gateway.settings import ConfigError, Settings, load_settings, read_secret


def register(subparsers: Any) -> None:
    gw = subparsers.add_parser("gateway", help="run the API-parity gateway")
    gw.add_argument("--config", required=True, help="gateway YAML config file")
    gw.add_argument("--host", help="listen address (default: the config's server.host)")
    gw.add_argument("--port", type=int, help="listen port (default: the config's server.port)")
    gw.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    gw.add_argument(
        "--ops-port",
        type=int,
        help="serve /metrics and the detailed /ready on this port (default: the config's"
        " ops.port; 0 picks a free one)",
    )
    gw.add_argument(
        "--log-format", choices=["text", "json"], help="default: the config's server.log_format"
    )
    gw.set_defaults(func=run_gateway)

    config = subparsers.add_parser("config", help="work with gateway config files")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a gateway config and explain problems")
    check.add_argument("file")
    check.set_defaults(func=check_config)

    drill = subparsers.add_parser(
        "drill", help="failover drill: force each hosted target's circuit open and test routes"
    )
    drill.add_argument("--config", required=True, help="the running gateway's YAML config")
    drill.add_argument("--gateway", help="gateway URL (default: from the config's server)")
    drill.add_argument("--admin-key", help="admin key (default: from admin.key_env / key_file)")
    drill.add_argument("--api-key", help="a client API key, when the gateway requires one")
    drill.add_argument("--timeout", type=float, default=120.0, help="per-request seconds")
    drill.set_defaults(func=run_drill)


def _load(path: str) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


# Python's default (700, 10, 10) collects the young generation after every 700 net container
# allocations; under load that walks the objects of every request in flight again and again,
# and promotes them to be walked in the older generations too. These thresholds cut CPU per
# request at concurrency 256 by about a quarter to a third (JSON) with no change in RSS
# (docs/benchmarks.md, round 3). Reference counting still frees acyclic garbage at once.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """The gateway process's garbage-collector thresholds (see GC_THRESHOLDS)."""
    gc.set_threshold(*GC_THRESHOLDS)


def run_gateway(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    import uvicorn

    from serving.engine.exitcodes import ExitCode
    from serving.gateway.app import create_app
    from serving.gateway.coalesce import HeadCoalescingProtocol
    from serving.gateway.drain import DrainingServer, bind
    from serving.gateway.logs import configure

    configure(args.log_level, args.log_format or settings.server.log_format)
    app = create_app(settings)
    keeper = app.state.gateway.keeper
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    sockets = [bind(host, port)]
    ops_port = args.ops_port if args.ops_port is not None else settings.ops.port
    if ops_port is not None:
        ops = bind(settings.ops.host or host, ops_port)
        keeper.ops_port = ops.getsockname()[1]
        sockets.append(ops)
        print(f"ops endpoints on port {keeper.ops_port}", file=sys.stderr, flush=True)
    # uvicorn's own loggers go through the handler configured above (log_config=None); its
    # access log is off: the gateway writes one richer access line per request itself.
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,  # after the drain, nothing should be left to wait for
        # The gateway reads neither the client's address nor the scheme, so uvicorn's
        # X-Forwarded-* middleware would be a layer on every request for nothing.
        proxy_headers=False,
        server_header=False,
        http=HeadCoalescingProtocol,  # head and body in one write (coalesce.py)
    )
    tune_gc()
    server = DrainingServer(config, keeper, settings.server.drain)
    server.run(sockets=sockets)
    if keeper.cut_count:
        print(
            f"error: the drain deadline cut {keeper.cut_count} request(s) still in flight",
            file=sys.stderr,
        )
        return int(ExitCode.DRAIN_INCOMPLETE)
    return 0


def check_config(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    if settings is None:
        return 1
    print(f"{args.file}: ok — {len(settings.upstreams)} upstreams, {len(settings.routes)} routes")
    locality = {u.name: u.locality for u in settings.upstreams}
    for route in settings.routes:
        chain = " -> ".join(f"{t.label} ({locality[t.upstream]})" for t in route.targets)
        aliases = f" (aliases: {', '.join(route.aliases)})" if route.aliases else ""
        print(f"  {route.model}{aliases}: {chain}")
        if route.escalate is not None:
            e = route.escalate
            when = [f"prompt >= {e.min_prompt_tokens} tokens"] if e.min_prompt_tokens else []
            when += ["tools declared"] if e.tools else []
            print(f"    escalates to {e.to} when {' or '.join(when) or 'never (no condition)'}")
        for rule in route.rules:
            set_ = rule.when.model_dump(exclude_none=True)
            when_text = ", ".join(f"{k}={v}" for k, v in set_.items()) or "always"
            print(f"    rule {rule.name}: {when_text} -> {rule.to}")
    for warning in config_warnings(settings):
        print(f"warning: {warning}")
    return 0


def run_drill(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    import httpx

    from serving.gateway.drill import Drill, DrillError, run

    admin_key = args.admin_key or read_secret(settings.admin.key_env, settings.admin.key_file)
    if not admin_key:
        print("error: no admin key (--admin-key, or admin.key_env in the config)", file=sys.stderr)
        return 2
    url = args.gateway or f"http://{settings.server.host}:{settings.server.port}"
    with httpx.Client(base_url=url, timeout=args.timeout, trust_env=False) as client:
        drill = Drill(settings, client, admin_key=admin_key, api_key=args.api_key)
        try:
            return run(drill, sys.stdout)
        except (DrillError, httpx.HTTPError) as exc:
            print(f"error: drill against {url} failed: {exc}", file=sys.stderr)
            return 2
