"""The `serving` command. Each subcommand lives with the package it drives; this module only
wires them together, so it stays small as commands are added."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# module path -> each module exposes `register(subparsers)` adding its subcommands, and every
# subcommand sets `func` (args -> exit code) with `set_defaults`.
_COMMAND_MODULES = (
    "serving.gateway.commands",
    "serving.gateway.keycommands",
    "serving.engine.commands",
    "serving.catalog.commands",
    "serving.gateway.route_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serving",
        description=(
            "Self-hosted open models: plan, launch, and serve them behind an API-parity gateway."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
