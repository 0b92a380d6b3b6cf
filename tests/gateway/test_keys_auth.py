"""Client keys through a real gateway: every header form each SDK sends, plain and hashed
keys from every place they can be stored, wrong and missing keys, a key limited to some
models (403), a key that forces privacy, and per-key request, token and budget limits (429
with `retry-after`), each refusal in the caller's own dialect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.policy.keys import hash_key
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion, chat_stream
from tests.support.servers import free_port, serve

PLAIN = "sk-plain-env-key-0123456789abcdef"
HASHED = "sk-hashed-config-key-0123456789abcdef"
FILED = "sk-hashed-file-key-0123456789abcdef"
LISTED_PLAIN = "sk-listed-plain-0123456789abcdef"
LISTED_HASHED = "sk-listed-hashed-0123456789abcdef"
ONLY_CHAT = "sk-only-chat-0123456789abcdef"
PRIVATE = "sk-private-key-0123456789abcdef"
RPM = "sk-rpm-key-0123456789abcdef"
TPM = "sk-tpm-key-0123456789abcdef"
TPM_STREAM = "sk-tpm-stream-key-0123456789abcdef"
BUDGET = "sk-budget-key-0123456789abcdef"
USAGE = 14  # tokens of every fake answer (11 in, 3 out)


@dataclass
class Setup:
    url: str
    hosted: FakeUpstream
    local: FakeUpstream
    hashed_stored: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder: Path = tmp_path_factory.mktemp("keys")
    hashed_stored = hash_key(HASHED)
    (folder / "filed").write_text(hash_key(FILED) + "\n")
    hosted, local = FakeUpstream([Reply.json(chat_completion())]), FakeUpstream()
    local.script(Reply.json(chat_completion("from local")))
    keys: list[dict[str, Any]] = [
        {"name": "plain", "key_env": "KEYS_TEST_PLAIN"},
        {"name": "hashed", "key_hash": hashed_stored},
        {"name": "filed", "key_file": str(folder / "filed")},
        {"name": "only-chat", "key_env": "KEYS_TEST_ONLY_CHAT", "models": ["chat"]},
        {"name": "private", "key_env": "KEYS_TEST_PRIVATE", "private": True},
        {"name": "rpm", "key_env": "KEYS_TEST_RPM", "requests_per_minute": 2},
        {"name": "tpm", "key_env": "KEYS_TEST_TPM", "tokens_per_minute": 20},
        {"name": "tpm-stream", "key_env": "KEYS_TEST_TPM_STREAM", "tokens_per_minute": 10},
        {"name": "budget", "key_env": "KEYS_TEST_BUDGET", "monthly_budget_usd": 1.0},
    ]
    env = {
        "KEYS_TEST_PLAIN": PLAIN,
        "KEYS_TEST_ONLY_CHAT": ONLY_CHAT,
        "KEYS_TEST_PRIVATE": PRIVATE,
        "KEYS_TEST_RPM": RPM,
        "KEYS_TEST_TPM": TPM,
        "KEYS_TEST_TPM_STREAM": TPM_STREAM,
        "KEYS_TEST_BUDGET": BUDGET,
        "KEYS_TEST_LIST": f"{LISTED_PLAIN}, {hash_key(LISTED_HASHED)}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with serve(hosted.app) as hosted_url, serve(local.app) as local_url:
            # 11 input tokens at $0.1 each: one answer costs $1.10, over the $1 budget
            price = {"input": 100_000.0, "output": 0.0}
            settings = parse_settings(
                {
                    "server": {"api_keys_env": "KEYS_TEST_LIST", "keys": keys},
                    "privacy": {"detect": False},
                    "upstreams": [
                        {"name": "hosted", "base_url": hosted_url + "/v1", "locality": "hosted"},
                        {"name": "local", "base_url": local_url + "/v1", "locality": "local"},
                    ],
                    "routes": [
                        {
                            "model": "chat",
                            "aliases": ["chat-alias"],
                            "targets": [
                                {"upstream": "hosted", "model": "m", "price": price},
                                {"upstream": "local", "model": "m"},
                            ],
                        },
                        {"model": "other", "targets": [{"upstream": "hosted", "model": "m"}]},
                    ],
                },
                "keys-test",
            )
            with serve(create_app(settings)) as url:
                yield Setup(url, hosted, local, hashed_stored)


# ---- one request in each dialect, the key in each place its SDK puts it -------------------


def request(
    setup: Setup,
    dialect: str,
    key: str | None,
    *,
    form: str | None = None,
    model: str = "chat",
    stream: bool = False,
) -> httpx.Response:
    messages = [{"role": "user", "content": "hello"}]
    headers: dict[str, str] = {}
    params: dict[str, str] = {}
    form = (
        form or {"openai": "bearer", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}[dialect]
    )
    if key is not None:
        if form == "bearer":
            headers["authorization"] = f"Bearer {key}".strip()  # httpx refuses a trailing space
        elif form == "query":
            params["key"] = key
        else:
            headers[form] = key
    if dialect == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        return httpx.post(
            setup.url + "/v1/chat/completions", json=body, headers=headers, params=params
        )
    if dialect == "anthropic":
        body = {"model": model, "max_tokens": 16, "messages": messages, "stream": stream}
        headers["anthropic-version"] = "2023-06-01"
        return httpx.post(setup.url + "/v1/messages", json=body, headers=headers, params=params)
    method = "streamGenerateContent" if stream else "generateContent"
    if stream:
        params["alt"] = "sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    path = f"/v1beta/models/{model}:{method}"
    return httpx.post(setup.url + path, json=body, headers=headers, params=params)


def error_of(dialect: str, response: httpx.Response) -> tuple[str, str]:
    """(the dialect's error type or status name, its message)."""
    body = response.json()
    if dialect == "gemini":
        return body["error"]["status"], body["error"]["message"]
    return body["error"]["type"], body["error"]["message"]


FORMS = [("bearer", "openai"), ("x-api-key", "anthropic"), ("x-goog-api-key", "gemini")]
FORMS += [("query", "gemini"), ("bearer", "anthropic"), ("x-api-key", "openai")]
STORED = [PLAIN, HASHED, FILED, LISTED_PLAIN, LISTED_HASHED]


@pytest.mark.parametrize(("form", "dialect"), FORMS)
@pytest.mark.parametrize("key", STORED, ids=["plain", "hashed", "file", "list", "list-hashed"])
def test_every_header_form_accepts_every_stored_form(
    setup: Setup, form: str, dialect: str, key: str
) -> None:
    r = request(setup, dialect, key, form=form)
    assert r.status_code == 200, r.text


UNAUTHENTICATED = {"openai": "authentication_error", "anthropic": "authentication_error"}
UNAUTHENTICATED["gemini"] = "UNAUTHENTICATED"


@pytest.mark.parametrize(("form", "dialect"), FORMS)
@pytest.mark.parametrize("key", [None, "", "sk-wrong-0123456789abcdef", PLAIN + "x", PLAIN[:-1]])
def test_wrong_and_missing_keys_are_the_dialects_401(
    setup: Setup, form: str, dialect: str, key: str | None
) -> None:
    before = len(setup.hosted.requests) + len(setup.local.requests)
    r = request(setup, dialect, key, form=form)
    assert r.status_code == 401, r.text
    kind, message = error_of(dialect, r)
    assert kind == UNAUTHENTICATED[dialect]
    assert message == "invalid or missing API key"
    assert len(setup.hosted.requests) + len(setup.local.requests) == before


def test_the_stored_hash_is_not_itself_a_key(setup: Setup) -> None:
    r = request(setup, "openai", setup.hashed_stored)
    assert r.status_code == 401


PERMISSION = {"openai": "permission_error", "anthropic": "permission_error"}
PERMISSION["gemini"] = "PERMISSION_DENIED"


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_a_key_limited_to_some_models_gets_403_for_others(setup: Setup, dialect: str) -> None:
    assert request(setup, dialect, ONLY_CHAT).status_code == 200
    assert request(setup, dialect, ONLY_CHAT, model="chat-alias").status_code == 200
    before = len(setup.hosted.requests)
    r = request(setup, dialect, ONLY_CHAT, model="other")
    assert r.status_code == 403, r.text
    kind, message = error_of(dialect, r)
    assert kind == PERMISSION[dialect]
    assert "'other'" in message
    assert len(setup.hosted.requests) == before  # refused before any upstream
    if dialect == "openai":
        assert r.json()["error"]["code"] == "model_not_allowed"
    assert request(setup, dialect, PLAIN, model="other").status_code == 200


def test_a_key_limited_to_some_models_lists_only_those(setup: Setup) -> None:
    def listed(key: str, path: str = "/v1/models", **headers: str) -> list[str]:
        headers["authorization"] = f"Bearer {key}"
        body = httpx.get(setup.url + path, headers=headers).json()
        if "models" in body:
            return sorted(m["name"].removeprefix("models/") for m in body["models"])
        return sorted(m["id"] for m in body["data"])

    assert listed(PLAIN) == ["chat", "chat-alias", "other"]
    assert listed(ONLY_CHAT) == ["chat", "chat-alias"]
    assert listed(ONLY_CHAT, **{"anthropic-version": "2023-06-01"}) == ["chat", "chat-alias"]
    assert listed(ONLY_CHAT, "/v1beta/models") == ["chat", "chat-alias"]


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_a_private_key_never_reaches_the_hosted_upstream(setup: Setup, dialect: str) -> None:
    before = len(setup.hosted.requests)
    r = request(setup, dialect, PRIVATE)
    assert r.status_code == 200, r.text
    assert r.headers["x-serving-target"] == "local/m"
    assert "hosted/m:private" in r.headers["x-serving-fallback"]
    assert len(setup.hosted.requests) == before
    assert request(setup, dialect, PLAIN).headers["x-serving-target"] == "hosted/m"


RATE_LIMITED = {"openai": "rate_limit_error", "anthropic": "rate_limit_error"}
RATE_LIMITED["gemini"] = "RESOURCE_EXHAUSTED"


def assert_limited(dialect: str, r: httpx.Response, *, within: float = 120) -> str:
    assert r.status_code == 429, r.text
    kind, message = error_of(dialect, r)
    assert kind == RATE_LIMITED[dialect]
    retry = float(r.headers["retry-after"])
    assert 1 <= retry <= within
    return message


def test_requests_per_minute_are_enforced_in_every_dialect(setup: Setup) -> None:
    assert request(setup, "openai", RPM).status_code == 200
    assert request(setup, "anthropic", RPM).status_code == 200
    for dialect in ("gemini", "openai", "anthropic"):
        message = assert_limited(dialect, request(setup, dialect, RPM))
        assert "2 requests per minute" in message
    assert request(setup, "openai", PLAIN).status_code == 200  # other keys are unaffected


def test_tokens_per_minute_count_answers_and_refuse_once_spent(setup: Setup) -> None:
    assert request(setup, "openai", TPM).status_code == 200  # 0 of 20 used: admitted
    assert request(setup, "gemini", TPM).status_code == 200  # 14 of 20: admitted
    message = assert_limited("anthropic", request(setup, "anthropic", TPM))  # 28 of 20
    assert "20 tokens per minute" in message


def test_a_streams_tokens_count_once_it_has_ended(setup: Setup) -> None:
    setup.hosted.script(Reply.sse(chat_stream()))
    try:
        r = request(setup, "openai", TPM_STREAM, stream=True)
        assert r.status_code == 200 and "[DONE]" in r.text
        deadline = time.monotonic() + 5  # counted just after the last byte was sent
        while True:
            r = request(setup, "openai", TPM_STREAM, stream=True)
            if r.status_code == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert_limited("openai", r)
    finally:
        setup.hosted.script(Reply.json(chat_completion()))


def test_a_spent_monthly_budget_is_429_insufficient_quota_until_next_month(setup: Setup) -> None:
    assert request(setup, "openai", BUDGET).status_code == 200  # $0 of $1: admitted, costs $1.10
    r = request(setup, "openai", BUDGET)
    message = assert_limited("openai", r, within=31 * 24 * 3600)
    assert r.json()["error"]["code"] == "insufficient_quota"
    assert "$1.10 of $1.00" in message
    assert_limited("gemini", request(setup, "gemini", BUDGET), within=31 * 24 * 3600)


def test_limit_metrics_name_the_key_never_the_secret(setup: Setup) -> None:
    request(setup, "openai", ONLY_CHAT, model="other")
    for _ in range(3):
        request(setup, "openai", RPM)
    text = httpx.get(setup.url + "/metrics").text
    assert 'serving_key_denied_total{key="only-chat",route="other"}' in text
    assert 'serving_key_limited_total{key="rpm",reason="requests"}' in text
    for secret in [*STORED, ONLY_CHAT, PRIVATE, RPM, TPM, BUDGET]:
        assert secret not in text


@pytest.mark.parametrize(("on_error", "status"), [("allow", 200), ("deny", 503)])
def test_an_unreachable_limits_store_fails_open_or_closed_as_configured(
    monkeypatch: pytest.MonkeyPatch, on_error: str, status: int
) -> None:
    monkeypatch.setenv("KEYS_TEST_RPM", RPM)
    fake = FakeUpstream([Reply.json(chat_completion())])
    with serve(fake.app) as up:
        settings = parse_settings(
            {
                "server": {
                    "keys": [{"name": "rpm", "key_env": "KEYS_TEST_RPM", "requests_per_minute": 1}]
                },
                "state": {
                    "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                    "counters": {"on_error": on_error, "timeout": 0.2},
                },
                "upstreams": [{"name": "up", "base_url": up + "/v1"}],
                "routes": [{"model": "chat", "targets": [{"upstream": "up", "model": "m"}]}],
            }
        )
        with serve(create_app(settings)) as url:
            s = Setup(url, fake, fake, "")
            for _ in range(2):  # over the limit of 1, but nothing counts while the store is down
                r = request(s, "openai", RPM)
                assert r.status_code == status, r.text
            if status == 503:
                assert r.headers["retry-after"] == "5"
                assert not fake.requests
            else:
                assert len(fake.requests) == 2
            metrics = httpx.get(url + "/metrics").text
            assert 'serving_key_limit_errors_total{operation="admit"} 2.0' in metrics
