"""Nothing secret leaves the gateway: a real `serving gateway` process, logging at DEBUG in
text and in JSON, is driven through failures that tempt a leak (upstreams that echo their key
in 401/403/500 bodies and in a 400's message, a client key in Gemini's `?key=`, wrong keys,
private prompts, an unreachable upstream), in all three client dialects against upstreams of
all three dialects, single-target routes included. Then no upstream key, client key or private
content may appear in any log line, in /metrics, or in any response a client saw (body and
headers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from serving.gateway.policy.keys import hash_key
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.matrix import error_reply, text_reply
from tests.support.servers import free_port, serve

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_KEYS = {
    "openai": "sk-upstream-openai-SECRET-0a1b2c3d4e5f",
    "anthropic": "sk-ant-upstream-SECRET-9z8y7x6w5v4u",
    "gemini": "AIzaUpstreamGeminiSECRET0123456789abc",
}
LOCAL_KEY = "local-engine-SECRET-token-5566778899"
CLIENT_KEY = "sk-client-plain-SECRET-11223344556677"
HASHED_CLIENT_KEY = "sk-client-hashed-SECRET-99887766554433"
PRIVATE_CLIENT_KEY = "sk-client-private-SECRET-1357924680"
PRIVATE_TEXT = "patient-zebra-diagnosis-confidential-4242"
PRIVATE_EMAIL = "jane.private.person@example.org"
SECRETS = [*UPSTREAM_KEYS.values(), LOCAL_KEY, CLIENT_KEY, HASHED_CLIENT_KEY, PRIVATE_CLIENT_KEY]
PRIVATE = [PRIVATE_TEXT, PRIVATE_EMAIL]
DIALECTS = ("openai", "anthropic", "gemini")


@dataclass
class Fakes:
    hosted: dict[str, FakeUpstream]
    local: FakeUpstream
    seen: list[str] = field(default_factory=list)  # every response a client got, as text


def config(urls: dict[str, str], local_url: str) -> dict[str, Any]:
    base = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
    upstreams: list[dict[str, Any]] = [
        {
            "name": d,
            "dialect": d,
            "base_url": urls[d] + base[d],
            "locality": "hosted",
            "api_key_env": f"CAPTURE_UP_{d.upper()}",
        }
        for d in DIALECTS
    ]
    upstreams += [
        {"name": "local", "base_url": local_url + "/v1", "api_key_env": "CAPTURE_UP_LOCAL"},
        {"name": "dead", "base_url": f"http://127.0.0.1:{free_port()}/v1", "locality": "hosted"},
    ]
    routes: list[dict[str, Any]] = [
        {"model": f"via-{d}", "targets": [{"upstream": d, "model": f"{d}-model"}]} for d in DIALECTS
    ]
    routes += [
        {
            "model": "mixed",
            "targets": [{"upstream": "openai", "model": "m"}, {"upstream": "local", "model": "m"}],
        },
        {"model": "dead", "targets": [{"upstream": "dead", "model": "m"}]},
    ]
    keys = [
        {"name": "team", "key_hash": hash_key(HASHED_CLIENT_KEY)},
        {"name": "legal", "key_env": "CAPTURE_PRIVATE_KEY", "private": True},
    ]
    return {
        "server": {"api_keys_env": "CAPTURE_CLIENT_KEYS", "keys": keys},
        "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
        "upstreams": upstreams,
        "routes": routes,
    }


@contextmanager
def gateway_process(path: Path, fmt: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        **{f"CAPTURE_UP_{d.upper()}": k for d, k in UPSTREAM_KEYS.items()},
        "CAPTURE_UP_LOCAL": LOCAL_KEY,
        "CAPTURE_CLIENT_KEYS": CLIENT_KEY,
        "CAPTURE_PRIVATE_KEY": PRIVATE_CLIENT_KEY,
    }
    args = [sys.executable, "-m", "serving", "gateway", "--config", str(path)]
    args += ["--port", str(port), "--log-level", "debug", "--log-format", fmt]
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gateway exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gateway did not start: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def send(
    url: str,
    fakes: Fakes,
    dialect: str,
    model: str,
    *,
    key: str | None = CLIENT_KEY,
    form: str = "native",
    prompt: str = "hello",
    stream: bool = False,
    private: bool = False,
) -> httpx.Response:
    headers: dict[str, str] = {"x-serving-private": "true"} if private else {}
    params: dict[str, str] = {}
    if key is not None:
        if form == "query":
            params["key"] = key
        elif dialect == "openai":
            headers["authorization"] = f"Bearer {key}"
        elif dialect == "anthropic":
            headers["x-api-key"] = key
        else:
            headers["x-goog-api-key"] = key
    messages = [{"role": "user", "content": prompt}]
    if dialect == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        path = "/v1/chat/completions"
    elif dialect == "anthropic":
        body = {"model": model, "max_tokens": 16, "messages": messages, "stream": stream}
        headers["anthropic-version"] = "2023-06-01"
        path = "/v1/messages"
    else:
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        path = f"/v1beta/models/{model}:{'streamGenerateContent' if stream else 'generateContent'}"
        if stream:
            params["alt"] = "sse"
    r = httpx.post(url + path, json=body, headers=headers, params=params, timeout=20)
    fakes.seen.append(f"{r.status_code} {dict(r.headers)} {r.text}")
    return r


def echo(upstream: str, status: int, what: str) -> Reply:
    """An upstream error whose message quotes the gateway's key and its auth header."""
    key = UPSTREAM_KEYS[upstream]
    message = f"{what}: Incorrect API key provided: {key} (Authorization: Bearer {key})"
    return error_reply(upstream, status, message)


def exercise(url: str, fakes: Fakes) -> None:
    for client in DIALECTS:
        for up in DIALECTS:
            model = f"via-{up}"
            for status, expected in [(401, 502), (403, 502), (500, 500)]:
                fakes.hosted[up].script(echo(up, status, f"failure {PRIVATE_TEXT}"))
                r = send(url, fakes, client, model, stream=status == 403)
                assert r.status_code == expected, r.text
                assert f"upstream '{up}'" in r.text
            fakes.hosted[up].script(echo(up, 400, "temperature must be at most 2"))
            r = send(url, fakes, client, model)
            assert r.status_code == 400 and "temperature must be at most 2" in r.text
            fakes.hosted[up].script(text_reply(up, False))
            assert send(url, fakes, client, model, key=HASHED_CLIENT_KEY).status_code == 200
        # private by header, by key, by detector: served locally; the local engine then fails
        fakes.local.script(Reply.json(chat_completion(f"answer about {PRIVATE_TEXT}")))
        prompt = f"about {PRIVATE_TEXT}"
        assert send(url, fakes, client, "mixed", prompt=prompt, private=True).status_code == 200
        r = send(url, fakes, client, "mixed", prompt=prompt, key=PRIVATE_CLIENT_KEY)
        assert r.status_code == 200 and r.headers["x-serving-target"] == "local/m"
        r = send(url, fakes, client, "mixed", prompt=f"mail {PRIVATE_EMAIL} {PRIVATE_TEXT}")
        assert r.status_code == 200 and r.headers["x-serving-target"] == "local/m"
        fakes.local.script(
            Reply.json({"error": {"message": f"engine crashed on {PRIVATE_TEXT} {LOCAL_KEY}"}}, 500)
        )
        r = send(url, fakes, client, "mixed", prompt=prompt, private=True)
        assert r.status_code == 503, r.text  # private, and the only local target failed
        # wrong, missing and hashed-as-key client keys; an unknown model; a dead upstream
        for wrong in ["sk-wrong-SECRETISH-000", None, hash_key(CLIENT_KEY)]:
            assert send(url, fakes, client, "via-openai", key=wrong).status_code == 401
        assert send(url, fakes, client, "no-such-model").status_code == 404
        assert send(url, fakes, client, "dead").status_code == 503
    # Gemini's `?key=` carries the client key in the URL: never logged
    fakes.hosted["gemini"].script(text_reply("gemini", False))
    assert send(url, fakes, "gemini", "via-gemini", form="query").status_code == 200
    assert (
        send(url, fakes, "gemini", "via-gemini", key=CLIENT_KEY + "x", form="query").status_code
        == 401
    )


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[dict[str, str], str, Fakes]]:
    fakes = Fakes({d: FakeUpstream() for d in DIALECTS}, FakeUpstream())
    with ExitStack() as stack:
        urls = {d: stack.enter_context(serve(f.app)) for d, f in fakes.hosted.items()}
        local_url = stack.enter_context(serve(fakes.local.app))
        yield urls, local_url, fakes


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_or_private_content_in_logs_metrics_or_responses(
    upstreams: tuple[dict[str, str], str, Fakes], tmp_path: Path, fmt: str
) -> None:
    urls, local_url, fakes = upstreams
    fakes.seen.clear()
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config(urls, local_url)))
    log = tmp_path / "gateway.log"
    with gateway_process(path, fmt, log) as url:
        exercise(url, fakes)
        metrics = httpx.get(url + "/metrics").text
    lines = log.read_text().splitlines()

    # The capture saw what it should have: debug lines, warnings for the 5xx, access lines.
    assert len(lines) > 100
    assert any("-> 502" in line for line in lines)
    assert any("rejected the gateway's credentials" in line for line in lines)
    if fmt == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert {"debug", "info", "warning"} <= {r["level"] for r in records}
        assert any(r.get("key") == "team" for r in records)  # access lines name the key
    else:
        assert any(" DEBUG " in line for line in lines)
    assert 'serving_requests_total{dialect="gemini"' in metrics
    # The upstreams did receive the keys and the private text: the test is not vacuous.
    received = [str(r.headers) for f in fakes.hosted.values() for r in f.requests]
    assert any(UPSTREAM_KEYS["openai"] in h for h in received)
    assert any(PRIVATE_TEXT.encode() in r.body for r in fakes.local.requests)

    for secret in SECRETS + PRIVATE:
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{secret!r} in the {fmt} log: {leaks[:3]}"
        assert secret not in metrics, f"{secret!r} in /metrics"
    for secret in SECRETS:
        leaked = [seen for seen in fakes.seen if secret in seen]
        assert not leaked, f"{secret!r} reached a client: {leaked[:2]}"
    for seen in fakes.seen:  # private text only ever in answers, never in an error
        if not seen.startswith("200 "):
            assert PRIVATE_TEXT not in seen and PRIVATE_EMAIL not in seen, seen
