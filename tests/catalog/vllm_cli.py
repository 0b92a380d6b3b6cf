"""Check a vLLM command line the way the installed vLLM would, without starting anything.

The arguments go through vLLM's own server parser (built as its api_server entry point builds it:
FlexibleArgumentParser + make_arg_parser) and vLLM's own pre-start validation
(validate_parsed_serve_args, validate_api_server_args). What vLLM checks only later, when it
reads the model's config.json (quantization, tokenizer mode, load and config format, executor
backend), is checked here against vLLM's own registries and with ModelConfig's rules, using the
checkpoint facts the catalog records (the quant_method in the checkpoint's config.json).
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence
from functools import cache
from typing import Any, get_args

from serving.catalog.profiles import load_profiles


class Rejected(AssertionError):
    """vLLM would refuse this command; the message is vLLM's reason."""


@cache
def _parser() -> argparse.ArgumentParser:
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser: argparse.ArgumentParser = make_arg_parser(
        FlexibleArgumentParser(description="vLLM OpenAI-Compatible RESTful API server.")  # type: ignore[no-untyped-call]  # vLLM leaves it unannotated
    )
    return parser


def server_args(argv: Sequence[str]) -> list[str]:
    """The server's own arguments from `python -m MODULE ARGS...` (or just ARGS)."""
    args = list(argv)
    if "-m" in args:
        args = args[args.index("-m") + 2 :]
    return args


def checkpoint_quant_methods() -> dict[str, str | None]:
    """Hub repo -> quant_method of its config.json, as the catalog records it."""
    found: dict[str, str | None] = {}
    for profile in load_profiles().values():
        for weights in profile.weights.values():
            if found.get(weights.repo) not in (None, weights.quant_method):
                raise AssertionError(f"{weights.repo}: the catalog disagrees on its quant_method")
            found[weights.repo] = weights.quant_method
    return found


def parse(argv: Sequence[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return _parser().parse_args(server_args(argv))
    except SystemExit as exc:
        reason = [line for line in err.getvalue().splitlines() if "error:" in line]
        raise Rejected(f"vLLM's argument parser refused {list(argv)}: {reason}") from exc


def check(argv: Sequence[str], checkpoint_quant_method: str | None = None) -> argparse.Namespace:
    """Parse and validate like vLLM; raise Rejected with vLLM's reason when it would refuse."""
    from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args
    from vllm.entrypoints.launchers.launcher import validate_api_server_args
    from vllm.exceptions import VLLMValidationError

    args = parse(argv)
    try:
        validate_parsed_serve_args(args)
        validate_api_server_args(args)  # type: ignore[no-untyped-call]  # vLLM leaves it unannotated
    except (VLLMValidationError, ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        raise Rejected(f"vLLM refuses {list(argv)}: {exc}") from exc
    _check_quantization(args, checkpoint_quant_method)
    _check_registries(args)
    return args


def _check_quantization(args: argparse.Namespace, checkpoint: str | None) -> None:
    """ModelConfig._verify_quantization, with the checkpoint's quant_method given."""
    from vllm.config.quantization import ONLINE_QUANT_SHORTHAND_NAMES
    from vllm.model_executor.layers.quantization import (
        DEPRECATED_QUANTIZATION_METHODS,
        QUANTIZATION_METHODS,
    )

    asked: str | None = args.quantization
    if checkpoint is not None and asked is not None and asked != checkpoint:
        raise Rejected(
            f"Quantization method specified in the model config ({checkpoint}) does not match "
            f"the quantization method specified in the `quantization` argument ({asked})"
        )
    if checkpoint is None and asked is not None and asked not in ONLINE_QUANT_SHORTHAND_NAMES:
        # A checkpoint method on a checkpoint that is not quantized: Fp8Config, for one,
        # raises "The `fp8` quantization method no longer supports online quantization".
        raise Rejected(
            f"--quantization {asked} reads a checkpoint quantized with {asked}, but this "
            f"checkpoint is not quantized; online methods: {sorted(ONLINE_QUANT_SHORTHAND_NAMES)}"
        )
    method = checkpoint or asked
    if method is None:
        return
    if method not in QUANTIZATION_METHODS:
        raise Rejected(f"Invalid quantization method: {method}")
    if method in DEPRECATED_QUANTIZATION_METHODS and not args.allow_deprecated_quantization:
        raise Rejected(
            f"The quantization method {method} is deprecated and will be removed in future "
            "versions of vLLM. To bypass, set `--allow-deprecated-quantization`."
        )


def _check_registries(args: argparse.Namespace) -> None:
    from vllm.config.parallel import DistributedExecutorBackend
    from vllm.model_executor.model_loader import _LOAD_FORMAT_TO_MODEL_LOADER
    from vllm.tokenizers.registry import TokenizerRegistry
    from vllm.tool_parsers import ToolParserManager
    from vllm.transformers_utils.config import ConfigFormat

    checks: list[tuple[str, Any, Any]] = [
        ("--tokenizer-mode", args.tokenizer_mode, {"auto", *TokenizerRegistry.tokenizers}),
        ("--load-format", args.load_format, {"auto", *_LOAD_FORMAT_TO_MODEL_LOADER}),
        ("--config-format", args.config_format, set(get_args(ConfigFormat))),
        (
            "--distributed-executor-backend",
            args.distributed_executor_backend,
            {None, *get_args(DistributedExecutorBackend)},
        ),
    ]
    if args.tool_call_parser is not None:
        checks.append(
            ("--tool-call-parser", args.tool_call_parser, set(ToolParserManager.list_registered()))
        )
    for flag, value, known in checks:
        if value not in known:
            raise Rejected(f"{flag} {value!r} is not one vLLM knows: {sorted(map(str, known))}")
