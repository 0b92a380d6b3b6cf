"""Removing anything that looks like a credential from text a client or a log line will see.

Upstream error bodies are written by someone else: an upstream may echo the request's
`Authorization` header, quote the key it refused, or paste a token into its message. Before
such text leaves the gateway, `redact` replaces

- the exact secrets the caller names (the gateway's own key for that upstream), wherever they
  appear, whatever their shape;
- credential-shaped tokens: `Bearer …`/`Basic …` values, `sk-…` (OpenAI, Anthropic), `AIza…`
  (Google), and the values of `key=`, `api_key: …`, `token=`, `password=` style fields;
- long opaque tokens (32+ characters of letters and digits, with both), which is how most
  generated keys look.

It runs on error paths only (never per token of a healthy answer); input is cut to
`MAX_CHARS` first, so every pattern runs over bounded text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
MAX_CHARS = 2000

_SCHEMES = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_NAMED = re.compile(
    r"(?i)\b((?:x-)?(?:goog-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password"
    r"|passwd|authorization|key|token))(\"?'?\s*[:=]\s*\"?'?)([^\s\"',;&}]{4,})"
)
# A bare `key`/`token` field name is common in honest messages ("missing key: messages"):
# its value is only masked when it looks generated (8+ characters, a digit among them).
_LOOSE_NAMES = frozenset({"key", "token"})
_SHAPED = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{16,})")
_OPAQUE = re.compile(r"[A-Za-z0-9_+/=-]{32,}")


def _opaque(match: re.Match[str]) -> str:
    token = match.group(0)
    has_alpha = any(ch.isalpha() for ch in token)
    has_digit = any(ch.isdigit() for ch in token)
    return MASK if has_alpha and has_digit else token


def _named(match: re.Match[str]) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if name.lower() in _LOOSE_NAMES and (len(value) < 8 or not any(c.isdigit() for c in value)):
        return match.group(0)
    return f"{name}{sep}{MASK}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret and credential-shaped token replaced by `[redacted]`."""
    out = text[:MAX_CHARS] + ("…" if len(text) > MAX_CHARS else "")
    for secret in secrets:
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    out = _SCHEMES.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _NAMED.sub(_named, out)
    out = _SHAPED.sub(MASK, out)
    return _OPAQUE.sub(_opaque, out)
