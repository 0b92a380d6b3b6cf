"""Client keys: how they are stored (plain or as salted hashes), how a presented key is found
(in constant time), and the policy each one carries.

Stored form. A configured key value is either the key itself or its hash,
`sha256$<salt hex>$<digest hex>` with digest = SHA-256(salt ‖ key), as `serving keys hash`
prints it. Both may sit in `key_env`/`key_file` and `server.api_keys_env` (told apart by the
scheme prefix); a hash may also be written in the config itself (`key_hash`), since it is
no secret. One fast salted hash, not a slow password hash, because API keys are generated with
128+ bits of entropy (`serving keys new` makes 256): nothing is gained by stretching them,
and verification runs on every request. `serving keys hash` refuses short keys for that reason.

Lookup. `KeyRing.find` compares the presented key against every entry with
`hmac.compare_digest` and never stops early, so how long it takes says nothing about which
entry matched or how much of a key was right; no dict or set is ever indexed by a secret.
Plain entries are compared as SHA-256 digests, so the comparison does not leak their length
either. A full scan costs one SHA-256 of ~50 bytes per entry (about a microsecond each), so
with many keys the ring remembers recently accepted keys: a bounded map from an HMAC of the
presented key, under a random per-process secret, to the entry it matched. The map is indexed
by that HMAC, never by the key; a hit is then verified against its entry like any other, and
a key that matches nothing is never remembered (wrong keys always pay the full scan).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from serving.gateway.settings import RouteHints

SCHEME = "sha256"
_SALT_BYTES = 16
MIN_KEY_CHARS = 20


class KeyFormatError(ValueError):
    """A stored value that starts like a hash but is not a valid one."""


def hash_key(key: str, *, salt: bytes | None = None) -> str:
    """The stored form of `key`: `sha256$<salt hex>$<digest hex>`, a fresh salt each time."""
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    digest = hashlib.sha256(salt + key.encode("utf-8")).hexdigest()
    return f"{SCHEME}${salt.hex()}${digest}"


def new_key() -> str:
    """A fresh client key: 32 random bytes, URL-safe, with a recognisable prefix."""
    return "sk-serving-" + secrets.token_urlsafe(32)


def is_hash(value: str) -> bool:
    return value.startswith(SCHEME + "$")


def parse_hash(value: str) -> tuple[bytes, bytes]:
    """Salt and digest of a stored hash; `KeyFormatError` says what is wrong (never echoing
    the value: a mistyped hash may be a pasted key)."""
    parts = value.split("$")
    if len(parts) != 3 or parts[0] != SCHEME:
        raise KeyFormatError(f"a key hash has the form {SCHEME}$<salt hex>$<digest hex>")
    try:
        salt, digest = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
    except ValueError as exc:
        raise KeyFormatError("a key hash's salt and digest must be hexadecimal") from exc
    if len(salt) < 8 or len(digest) != hashlib.sha256().digest_size:
        raise KeyFormatError("a key hash needs a salt of 8+ bytes and a 32-byte SHA-256 digest")
    return salt, digest


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What one key may do. `id` is the key's bounded, non-secret name (its configured `name`,
    else its place in the config): it appears in logs, metrics and counter names."""

    id: str
    private: bool = False
    models: frozenset[str] | None = None  # route names (and aliases) it may use; None: all
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    monthly_budget_usd: float | None = None
    route_hints: RouteHints | None = None  # routing defaults for requests without hint headers

    @property
    def limited(self) -> bool:
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.monthly_budget_usd is not None
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: Literal["plain", "hash"]
    salt: bytes  # empty for plain entries
    digest: bytes  # SHA-256 of the key (plain) or of salt ‖ key (hash)
    policy: KeyPolicy


class KeyRing:
    """Every key the gateway accepts. Empty means the gateway is open (local use)."""

    _REMEMBER = 4096  # recently accepted keys (a map of 32-byte HMACs to entry indexes)
    _SCAN_BELOW = 16  # rings this small are always scanned whole: cheaper than the HMAC

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._pepper = os.urandom(32)
        self._recent: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, stored: str, policy: KeyPolicy) -> None:
        """Accept a key, given as the key itself or as its hash."""
        if is_hash(stored):
            salt, digest = parse_hash(stored)
            self._entries.append(_Entry("hash", salt, digest, policy))
        else:
            digest = hashlib.sha256(stored.encode("utf-8")).digest()
            self._entries.append(_Entry("plain", b"", digest, policy))

    def find(self, presented: str | None) -> KeyPolicy | None:
        """The policy of the entry `presented` matches, else None. A scan compares every
        entry with `hmac.compare_digest`, so its time does not depend on which one matched."""
        if presented is None or not self._entries:
            return None
        raw = presented.encode("utf-8", "surrogateescape")
        plain = hashlib.sha256(raw).digest()
        if len(self._entries) < self._SCAN_BELOW:
            found = self._scan(raw, plain)
            return self._entries[found].policy if found is not None else None
        tag = hmac.digest(self._pepper, raw, "sha256")
        index = self._recent.get(tag)
        if index is not None and self._matches(self._entries[index], raw, plain):
            self._recent.move_to_end(tag)
            return self._entries[index].policy
        found = self._scan(raw, plain)
        if found is None:
            return None
        self._recent[tag] = found
        if len(self._recent) > self._REMEMBER:
            self._recent.popitem(last=False)
        return self._entries[found].policy

    def _scan(self, raw: bytes, plain: bytes) -> int | None:
        found: int | None = None
        for i, entry in enumerate(self._entries):
            if self._matches(entry, raw, plain) and found is None:
                found = i
        return found

    @staticmethod
    def _matches(entry: _Entry, raw: bytes, plain: bytes) -> bool:
        candidate = hashlib.sha256(entry.salt + raw).digest() if entry.kind == "hash" else plain
        return hmac.compare_digest(candidate, entry.digest)
