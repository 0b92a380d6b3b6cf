"""Per-key limits hold across replicas: two real `serving gateway` processes sharing one real
redis-server enforce one requests-per-minute and one tokens-per-minute limit between them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.redis_server import redis_server
from tests.support.servers import free_port, serve

RPM_KEY = "sk-shared-rpm-0123456789abcdef"
TPM_KEY = "sk-shared-tpm-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def gateway_process(config: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "serving", "gateway", "--config", str(config)]
    args += ["--port", str(port), "--log-level", "warning"]
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
                pytest.fail(f"gateway on {port} did not start: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], FakeUpstream]]:
    folder = tmp_path_factory.mktemp("replicas")
    fake = FakeUpstream([Reply.json(chat_completion())])  # 14 tokens an answer
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(folder))
        upstream = stack.enter_context(serve(fake.app))
        config = {
            "server": {
                "keys": [
                    {"name": "rpm", "key_env": "SHARED_RPM_KEY", "requests_per_minute": 3},
                    {"name": "tpm", "key_env": "SHARED_TPM_KEY", "tokens_per_minute": 25},
                ]
            },
            "privacy": {"detect": False},
            "state": {"redis_url_env": "SHARED_REDIS_URL", "key_prefix": "shared-test:"},
            "upstreams": [{"name": "up", "base_url": upstream + "/v1", "locality": "hosted"}],
            "routes": [{"model": "chat", "targets": [{"upstream": "up", "model": "m"}]}],
        }
        path = folder / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "SHARED_RPM_KEY": RPM_KEY,
            "SHARED_TPM_KEY": TPM_KEY,
            "SHARED_REDIS_URL": redis_url,
        }
        urls = [
            stack.enter_context(gateway_process(path, env, folder / f"gateway-{i}.log"))
            for i in range(2)
        ]
        yield urls, fake


def chat(url: str, key: str) -> httpx.Response:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_requests_per_minute_hold_across_two_replicas(
    replicas: tuple[list[str], FakeUpstream],
) -> None:
    (a, b), fake = replicas
    before = len(fake.requests)
    answers = [chat(url, RPM_KEY) for url in (a, b, a, b, a)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert len(fake.requests) - before == 3  # each replica alone would have let 3 through
    for r in answers[3:]:
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= float(r.headers["retry-after"]) <= 120


def test_tokens_per_minute_hold_across_two_replicas(
    replicas: tuple[list[str], FakeUpstream],
) -> None:
    (a, b), _ = replicas
    assert chat(a, TPM_KEY).status_code == 200  # 0 of 25 used
    assert chat(b, TPM_KEY).status_code == 200  # 14 of 25, counted by the other replica
    refused = chat(a, TPM_KEY)  # 28 of 25
    assert refused.status_code == 429, refused.text
    assert "25 tokens per minute" in refused.json()["error"]["message"]
    assert chat(b, TPM_KEY).status_code == 429
