"""Redaction of upstream text: named secrets never survive, wherever they sit and whatever
surrounds them (property-based); credential shapes are masked; honest messages stay readable."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.redaction import MASK, MAX_CHARS, redact

KEYISH = st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=64)
FILLER = st.text(min_size=0, max_size=300)


@settings(max_examples=300, deadline=None)
@given(KEYISH, st.lists(FILLER, min_size=1, max_size=5))
def test_a_named_secret_never_survives(secret: str, pieces: list[str]) -> None:
    text = secret.join(pieces) + secret
    assert secret not in redact(text, [secret])


@settings(max_examples=200, deadline=None)
@given(KEYISH, st.integers(min_value=0, max_value=80))
def test_the_length_cut_never_leaves_part_of_a_key(secret: str, shift: int) -> None:
    text = "x " * ((MAX_CHARS - shift) // 2) + "token sk-" + secret * 3 + " tail"
    out = redact(text)
    assert len(out) <= MAX_CHARS + 1
    assert secret[:8] not in out.replace("x ", "")  # not even its first characters


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("Incorrect API key provided: sk-proj-abcDEF1234567890xyz", "sk-proj-abcDEF1234567890xyz"),
        ("Authorization: Bearer abc.def-123_456", "abc.def-123_456"),
        ("invalid x-api-key: ant-secret-value", "ant-secret-value"),
        ("GET /v1/models?key=AIzaSyA1234567890abcdefghijklmn", "AIzaSyA1234567890abcdefghijklmn"),
        ('{"api_key": "hunter2hunter2"}', "hunter2hunter2"),
        ("password=correcthorse", "correcthorse"),
        (
            "opaque 0123456789abcdefghijABCDEFGHIJ0123456789",
            "0123456789abcdefghijABCDEFGHIJ0123456789",
        ),
        ("token=a1b2c3d4e5f6", "a1b2c3d4e5f6"),
    ],
)
def test_credential_shapes_are_masked(text: str, gone: str) -> None:
    out = redact(text)
    assert gone not in out and MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "temperature: must be at most 2",
        "missing key: messages",
        "model 'llama-3.1-8b-instruct' not found",
        "request req_0123456789abcdef01234567 failed",
        "max_tokens must be <= 4096; the token budget is exhausted",
        "maximum context length is 8192 tokens",
        "Basic authentication required; bearer tokens only",
    ],
)
def test_honest_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text
