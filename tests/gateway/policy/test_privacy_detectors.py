"""PII and secret detectors: true and false positives, checksums, configuration."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from starlette.datastructures import Headers

from serving.gateway.policy.caller import presented_key
from serving.gateway.policy.facts import build_facts
from serving.gateway.policy.privacy import PrivacyPolicy, ScanDoubt, iban_ok, luhn_ok
from serving.gateway.settings import Privacy


def policy(**kw: Any) -> PrivacyPolicy:
    return PrivacyPolicy(Privacy.model_validate(kw))


def scan(text: str, **kw: Any) -> str | None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    return policy(**kw).scan(build_facts(json.loads(body)).text)


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("write to jane.doe+work@example.co.uk today", "email"),
        ("call me on +44 20 7946 0958", "phone"),
        ("my number is (415) 555-0132", "phone"),
        ("card 4111 1111 1111 1111 exp 12/27", "card"),
        ("card 5500-0000-0000-0004", "card"),
        ("pay 4012888888881881", "card"),
        ("card 4111 1111 1111 1111 2024 thanks", "card"),  # a trailing group is tolerated
        ("IBAN DE89 3704 0044 0532 0130 00 please", "iban"),
        ("to GB82WEST12345698765432", "iban"),
        ("ssn 123-45-6789", "national_id"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx", "secret"),
        ("aws AKIAIOSFODNN7EXAMPLE creds", "secret"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow...", "secret"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "secret"),
    ],
)
def test_true_positives(text: str, detector: str) -> None:
    assert scan(text) == detector


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "use the @decorator syntax in python",
        "order 4111 1111 1111 1112 is late",  # fails Luhn
        "the year 2024-01-15 and version 1.2.3",
        "invoice number 1234567890123",  # 13 digits, not a Luhn-valid card
        "IBAN DE89 3704 0044 0532 0130 01",  # mod-97 fails
        "ssn 000-12-3456 and 666-12-3456 are never issued",
        "the sk-learn library and a task-list",
        "call extension 5551234",
        "ratio 3/4, pi 3.14159, and 10-20-30",
    ],
)
def test_false_positives_are_not_flagged(text: str) -> None:
    assert scan(text) is None


def test_luhn_and_iban_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert luhn_ok("79927398713")
    assert iban_ok("DE89370400440532013000") and iban_ok("GB82 WEST 1234 5698 7654 32")
    assert not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE89")


def test_detectors_can_be_disabled_one_by_one_or_all() -> None:
    assert scan("mail jane@example.com", detectors=["card"]) is None
    assert scan("card 4111 1111 1111 1111", detectors=["card"]) == "card"
    assert scan("mail jane@example.com", detect=False) is None


def test_custom_patterns_are_detected_by_name() -> None:
    custom = [{"name": "employee_id", "pattern": r"\bEMP-\d{6}\b"}]
    assert scan("ask EMP-004211 about it", custom=custom) == "employee_id"
    assert scan("ask EMP-42 about it", custom=custom) is None


def test_invalid_custom_pattern_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        Privacy.model_validate({"custom": [{"name": "x", "pattern": "("}]})
    with pytest.raises(ValueError, match="unknown detectors"):
        Privacy.model_validate({"detectors": ["dna"]})


def test_marks_from_header_and_key() -> None:
    p = policy()
    assert p.marked(Headers({"x-serving-private": "true"}), False) == "header"
    assert p.marked(Headers({"x-serving-private": "1"}), False) == "header"
    assert p.marked(Headers({"x-serving-private": "false"}), False) is None
    assert p.marked(Headers({}), True) == "key"
    assert p.marked(Headers({}), False) is None


def test_presented_key_in_every_dialects_place() -> None:
    assert presented_key(Headers({"authorization": "Bearer abc"}), b"") == "abc"
    assert presented_key(Headers({"x-api-key": "def"}), b"") == "def"
    assert presented_key(Headers({"x-goog-api-key": "ghi"}), b"") == "ghi"
    assert presented_key(Headers({}), b"alt=sse&key=jkl") == "jkl"
    assert presented_key(Headers({}), b"") is None


def test_custom_patterns_run_on_re2_so_backtracking_constructs_are_refused() -> None:
    with pytest.raises(ValueError, match="RE2"):
        Privacy.model_validate({"custom": [{"name": "x", "pattern": r"(?<!a)b"}]})
    custom = [{"name": "nested", "pattern": r"(a+)+b"}]  # catastrophic for a backtracking engine
    assert scan("a" * 50_000 + "!", custom=custom) is None
    assert scan("a" * 50_000 + "b", custom=custom) == "nested"


def test_doubts_fail_closed() -> None:
    with pytest.raises(ScanDoubt) as info:
        policy(max_scan_bytes=10).scan("x" * 11)
    assert info.value.reason == "too_large"
    with pytest.raises(ScanDoubt) as info:
        policy().scan("4111 1111 1111 1112 " * 10_000, started=time.monotonic() - 60)
    assert info.value.reason == "timeout"
