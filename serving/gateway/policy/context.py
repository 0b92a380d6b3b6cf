"""Prompt size before dispatch, so a chain never tries a target whose window cannot hold it.

The estimate is `ceil(body bytes / bytes_per_token)` over the raw request body: JSON syntax,
role names and tool schemas all count, so it over-estimates (conservative: a borderline prompt
goes to a longer-context target rather than failing at the short one). English averages about
4 bytes per token with BPE tokenizers; 3.5 leaves room for code and non-English text.

When `context.tokenize_upstream` names a local engine, prompts whose estimate lands within
`tokenize_margin` of a target's window are counted exactly by its /tokenize endpoint; an error
there falls back to the estimate (logged and counted), never fails the request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from serving.gateway.settings import Context, Target


def estimate_tokens(body_len: int, bytes_per_token: float) -> int:
    return math.ceil(body_len / bytes_per_token)


def requested_output(parsed: Mapping[str, Any], default: int) -> int:
    """The output budget the request asks for, in any dialect's field name."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = parsed.get(key)
        if isinstance(value, int) and value > 0:
            return value
    config = parsed.get("generationConfig")  # Gemini
    if isinstance(config, dict):
        value = config.get("maxOutputTokens")
        if isinstance(value, int) and value > 0:
            return value
    return default


class ContextPolicy:
    def __init__(self, config: Context) -> None:
        self.config = config

    def prompt_estimate(self, body: bytes) -> int:
        return estimate_tokens(len(body), self.config.bytes_per_token)

    def fits(self, target: Target, prompt_tokens: int, output_tokens: int) -> bool:
        """A target with no declared window is assumed to fit (the upstream will say if not)."""
        window = target.context_window
        return window is None or prompt_tokens + output_tokens <= window

    def borderline(self, targets: list[Target], estimate: int, output_tokens: int) -> bool:
        """Whether an exact count could change which targets fit."""
        margin = self.config.tokenize_margin
        for t in targets:
            if t.context_window is None:
                continue
            need = estimate + output_tokens
            if abs(need - t.context_window) <= margin * t.context_window:
                return True
        return False
