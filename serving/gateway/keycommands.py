"""`serving keys hash` and `serving keys new`: the stored form of a client key.

The key is read from stdin (or a prompt that does not echo), never from the command line, so
it stays out of shell history and `ps`. Only the hash goes to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from serving.gateway.policy.keys import MIN_KEY_CHARS, hash_key, is_hash, new_key


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="make and hash client API keys")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    hashed = sub.add_parser(
        "hash", help="print the salted hash of a key read from stdin (for key_hash / key_env)"
    )
    hashed.add_argument(
        "--allow-short",
        action="store_true",
        help=f"hash a key under {MIN_KEY_CHARS} characters (a fast hash suits random keys only)",
    )
    hashed.set_defaults(func=run_hash)
    new = sub.add_parser("new", help="make a random key: the key on stderr, its hash on stdout")
    new.set_defaults(func=run_new)


def _read_key() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("key: ")
    return sys.stdin.readline().rstrip("\r\n")


def run_hash(args: argparse.Namespace) -> int:
    key = _read_key()
    if not key or key != key.strip():
        print("error: the key is empty or has leading/trailing spaces", file=sys.stderr)
        return 2
    if is_hash(key):
        print("error: that is already a key hash", file=sys.stderr)
        return 2
    if len(key) < MIN_KEY_CHARS and not args.allow_short:
        print(
            f"error: the key has {len(key)} characters; use a random key of {MIN_KEY_CHARS}+"
            " (`serving keys new` makes one), or --allow-short",
            file=sys.stderr,
        )
        return 2
    print(hash_key(key))
    return 0


def run_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(f"key (give it to the client; it is not stored): {key}", file=sys.stderr)
    print(hash_key(key))
    return 0
