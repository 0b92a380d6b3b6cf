"""Prompt size before dispatch, so a chain never tries a target whose window cannot hold it.

The estimate reads the request's facts (facts.py), never its bytes:
- text: `ceil(UTF-8 bytes of the decoded text / bytes_per_token)` plus 4 tokens per message
  for the chat template's role markers. English averages about 4 bytes per token with BPE
  tokenizers; 3.5 leaves room for code and non-English text;
- attachments: a flat cost per image, audio clip or document, by the target's dialect
  (`context.attachment_tokens`; defaults: OpenAI 765, a 1024x1024 high-detail image; Anthropic
  1600, the most an image costs after the API's own resize; Gemini 258, one image or tile).
  Base64 payloads never count as text.

A target whose window holds the prompt but not prompt + output budget is still used, with its
output budget lowered to what fits (every dialect treats the maximum as a ceiling); only a
prompt that cannot fit by itself skips a target.

When `context.tokenize_upstream` names a local engine, prompts whose estimate lands within
`tokenize_margin` of a target's window are counted exactly by its /tokenize endpoint; an error
there falls back to the estimate (logged and counted), never fails the request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from serving.gateway.policy.facts import RequestFacts
from serving.gateway.settings import Context, Target

MESSAGE_OVERHEAD = 4  # tokens of role markers per message in common chat templates


def estimate_tokens(size: int, bytes_per_token: float) -> int:
    return math.ceil(size / bytes_per_token)


class ContextPolicy:
    def __init__(self, config: Context) -> None:
        self.config = config

    def text_tokens(self, facts: RequestFacts) -> int:
        text = estimate_tokens(facts.text_bytes, self.config.bytes_per_token)
        return text + MESSAGE_OVERHEAD * facts.messages

    def attachment_tokens(self, facts: RequestFacts, dialect: str) -> int:
        table = self.config.attachment_tokens
        per = table.get(dialect, max(table.values(), default=0))
        return per * len(facts.attachments)

    def output(self, facts: RequestFacts) -> int:
        return facts.max_tokens or self.config.default_output_tokens

    def room(self, target: Target, prompt_tokens: int) -> int | None:
        """Output tokens left in the target's window after the prompt (None: no window)."""
        if target.context_window is None:
            return None
        return target.context_window - prompt_tokens

    def borderline(self, need: list[tuple[Target, int]], output_tokens: int) -> bool:
        """Whether an exact count could change which targets fit (`need`: target, prompt)."""
        margin = self.config.tokenize_margin
        for target, prompt in need:
            if target.context_window is None:
                continue
            window = target.context_window
            if abs(prompt + output_tokens - window) <= margin * window:
                return True
        return False


def with_max_tokens(body: Mapping[str, Any], dialect: str, n: int) -> dict[str, Any]:
    """A copy of a client body with its output budget set to `n`, in the dialect's field."""
    out = dict(body)
    if dialect == "responses":
        out["max_output_tokens"] = n
        return out
    if dialect == "gemini":
        key = "generation_config" if "generation_config" in out else "generationConfig"
        config = dict(out.get(key) or {})
        config["max_output_tokens" if "max_output_tokens" in config else "maxOutputTokens"] = n
        out[key] = config
        return out
    if "max_completion_tokens" in out:
        out["max_completion_tokens"] = n
    if "max_completion_tokens" not in body or "max_tokens" in body:
        out["max_tokens"] = n
    return out
