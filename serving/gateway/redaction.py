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

It runs on error paths only (never per token of a healthy answer); after the named secrets
are masked, the text is cut to `MAX_CHARS`, so every pattern runs over bounded text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
MAX_CHARS = 2000

_SCHEMES = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{6,})")
_NAMED = re.compile(
    r"(?i)\b((?:x-)?(?:goog-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password"
    r"|passwd|authorization|key|token))(\"?'?\s*[:=]\s*\"?'?)([^\s\"',;&}]{4,})"
)
# A bare `key`/`token` field name is common in honest messages ("missing key: messages"):
# its value is only masked when it looks generated (8+ characters, a digit among them).
_LOOSE_NAMES = frozenset({"key", "token"})
_SHAPED = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{16,})")
_OPAQUE = re.compile(r"[A-Za-z0-9_+/=-]{32,}")
_TRAILING = re.compile(r"[A-Za-z0-9_+/=.~-]+$")


def _opaque(match: re.Match[str]) -> str:
    token = match.group(0)
    has_alpha = any(ch.isalpha() for ch in token)
    has_digit = any(ch.isdigit() for ch in token)
    return MASK if has_alpha and has_digit else token


def _scheme(match: re.Match[str]) -> str:
    # "Basic authentication required" is prose: a credential has a digit, padding or length.
    value = match.group(3)
    if not (any(c.isdigit() for c in value) or value.endswith("=") or len(value) >= 20):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"


def _named(match: re.Match[str]) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if name.lower() in _LOOSE_NAMES and (len(value) < 8 or not any(c.isdigit() for c in value)):
        return match.group(0)
    return f"{name}{sep}{MASK}"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret and credential-shaped token replaced by `[redacted]`."""
    out = text
    for secret in secrets:  # before the cut, so no part of a named secret survives it
        if secret and len(secret) >= 4:
            out = out.replace(secret, MASK)
    if len(out) > MAX_CHARS:  # the cut drops a token it splits: half a key is still a leak
        out = _TRAILING.sub("", out[:MAX_CHARS]) + "…"
    out = _SCHEMES.sub(_scheme, out)
    out = _NAMED.sub(_named, out)
    out = _SHAPED.sub(MASK, out)
    return _OPAQUE.sub(_opaque, out)
