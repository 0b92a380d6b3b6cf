"""What the transport says about a request before its body is read: the key the caller
presented, the policy of the configured key it matched (policy/keys.py), and whether the
caller marked the request private (a header, or the key's policy).

The endpoint runner reads both once per request and hands `Caller` to the dispatcher as a
plain argument: nothing travels in context variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from serving.gateway.policy.hints import NO_HINTS, Hints
from serving.gateway.policy.keys import KeyPolicy


@dataclass(frozen=True, slots=True)
class Caller:
    private: str | None = None  # "header" or "key" when the caller marked the request private
    key: KeyPolicy | None = None  # the matched key's policy; None on an open gateway
    hints: Hints = NO_HINTS  # routing hints (policy/hints.py)


def presented_key(headers: Mapping[str, str], query: bytes) -> str | None:
    """The client's key as each dialect's SDK sends it: bearer token, `x-api-key`,
    `x-goog-api-key`, or Gemini's `?key=` query parameter."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    key = headers.get("x-api-key") or headers.get("x-goog-api-key")
    if key is None and b"key=" in query:
        values = parse_qs(query.decode("latin-1")).get("key")
        key = values[0] if values else None
    return key
