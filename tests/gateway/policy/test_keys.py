"""Client keys: salted hashes that verify only their own key, found in constant time among
plain and hashed entries, and the CLI that prints them."""

from __future__ import annotations

import hmac
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.policy import keys as k
from serving.gateway.policy.keys import KeyFormatError, KeyPolicy, KeyRing, hash_key, parse_hash

KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(KEYS, KEYS)
def test_a_hash_finds_its_key_and_no_other(key: str, other: str) -> None:
    ring = KeyRing()
    ring.add(hash_key(key), KeyPolicy("hashed"))
    assert ring.find(key) == KeyPolicy("hashed")
    if other != key:
        assert ring.find(other) is None


@settings(max_examples=200, deadline=None)
@given(KEYS, KEYS)
def test_a_plain_entry_finds_its_key_and_no_other(key: str, other: str) -> None:
    if k.is_hash(key):
        return  # a value shaped like a hash is read as one
    ring = KeyRing()
    ring.add(key, KeyPolicy("plain"))
    assert ring.find(key) == KeyPolicy("plain")
    if other != key:
        assert ring.find(other) is None


def test_hashes_are_salted_and_never_contain_the_key() -> None:
    key = "sk-serving-abcdefghijklmnopqrstuvwxyz012345"
    first, second = hash_key(key), hash_key(key)
    assert first != second  # a fresh salt each time
    assert key not in first and key not in second
    assert first.startswith("sha256$")
    salt, digest = parse_hash(first)
    assert len(salt) == 16 and len(digest) == 32


@pytest.mark.parametrize(
    "bad",
    [
        "sha256$zz$00",
        "sha256$" + "00" * 16,
        "sha256$00$" + "00" * 32,  # a 1-byte salt
        "sha256$" + "00" * 16 + "$" + "00" * 31,
        "sha256$a$b$c",
    ],
)
def test_a_malformed_hash_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(KeyFormatError) as info:
        KeyRing().add(bad, KeyPolicy("x"))
    assert bad not in str(info.value)


def test_every_entry_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time in which entry matched: the first, the last and no match all cost one
    `hmac.compare_digest` per entry (no early exit, no lookup keyed by the secret)."""
    ring = KeyRing()
    keys = [f"sk-test-key-number-{i:04d}-padding" for i in range(20)]
    for i, key in enumerate(keys):
        ring.add(hash_key(key) if i % 2 else key, KeyPolicy(f"k{i}"))
    calls: list[int] = []
    real = hmac.compare_digest

    def counted(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counted)  # the module keys.py calls through
    for presented, expected in [(keys[0], "k0"), (keys[-1], "k19"), ("wrong", None)]:
        calls.clear()
        found = ring.find(presented)
        assert (found.id if found else None) == expected
        assert len(calls) == len(keys)


def test_an_empty_ring_and_a_missing_key_find_nothing() -> None:
    assert KeyRing().find("anything") is None
    ring = KeyRing()
    ring.add("sk-some-key-0123456789", KeyPolicy("a"))
    assert ring.find(None) is None
    assert ring.find("") is None


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "keys", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_hash_prints_a_hash_that_verifies_the_key_from_stdin() -> None:
    key = "sk-cli-test-0123456789abcdefghijklmnop"
    done = _cli("hash", stdin=key + "\n")
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert key not in done.stdout + done.stderr
    ring = KeyRing()
    ring.add(stored, KeyPolicy("cli"))
    assert ring.find(key) == KeyPolicy("cli")


def test_cli_hash_refuses_a_short_key_unless_told() -> None:
    refused = _cli("hash", stdin="short\n")
    assert refused.returncode == 2 and "20+" in refused.stderr
    allowed = _cli("hash", "--allow-short", stdin="short\n")
    assert allowed.returncode == 0 and allowed.stdout.startswith("sha256$")


def test_cli_new_prints_a_key_on_stderr_and_its_hash_on_stdout() -> None:
    done = _cli("new")
    assert done.returncode == 0
    key = done.stderr.strip().rsplit(" ", 1)[-1]
    assert key.startswith("sk-serving-") and len(key) > 40
    ring = KeyRing()
    ring.add(done.stdout.strip(), KeyPolicy("new"))
    assert ring.find(key) is not None


def test_a_large_ring_remembers_accepted_keys_by_hmac_not_by_key() -> None:
    ring = KeyRing()
    keys = [f"sk-large-ring-key-{i:04d}-padding" for i in range(64)]
    for i, key in enumerate(keys):
        ring.add(hash_key(key), KeyPolicy(f"k{i}"))
    for _ in range(2):  # the second round is served from memory, with the same answers
        for i, key in enumerate(keys):
            found = ring.find(key)
            assert found is not None and found.id == f"k{i}"
        assert ring.find("sk-not-a-key-at-all-0000") is None
    remembered = ring._recent
    assert len(remembered) == len(keys)  # wrong keys are never remembered
    assert all(len(tag) == 32 for tag in remembered)
    assert not any(key.encode() in tag for key in keys for tag in remembered)
    assert ring.find(keys[0][:-1]) is None and ring.find(keys[0] + "x") is None
