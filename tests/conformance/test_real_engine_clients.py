"""Framework clients as people use them, with their default settings, through the gateway
configured exactly as `make serve` configures it (deploy/examples/local.yaml), against the real
embedded engine. LangChain's ChatAnthropic sends `max_tokens` 4096 by default (wider than the
old 2048 window): it must get an answer, not a 400."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.engine.running import REPO_ROOT, RunningEngine
from tests.support.servers import serve

pytestmark = pytest.mark.engine

LOCAL_CONFIG = REPO_ROOT / "deploy" / "examples" / "local.yaml"
QUESTION = "What is the capital of France? Answer in one short sentence."


def local_config(engine_base_url: str) -> dict[str, object]:
    """`make serve`'s config, with the engine's address swapped for the session engine's."""
    config = yaml.safe_load(Path(LOCAL_CONFIG).read_text())
    (upstream,) = config["upstreams"]
    assert upstream["base_url"] == "http://127.0.0.1:8001/v1"
    upstream["base_url"] = engine_base_url
    return dict(config)


@pytest.fixture(scope="module")
def local_gateway(engine: RunningEngine) -> Iterator[str]:
    with serve(create_app(parse_settings(local_config(engine.base_url)))) as url:
        yield url


def test_the_example_config_gives_the_engine_its_native_window() -> None:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    (route,) = config["routes"]
    assert route["targets"][0]["context_window"] == 8192


def test_langchain_chat_openai_with_defaults(local_gateway: str) -> None:
    model = ChatOpenAI(model="smollm2", base_url=f"{local_gateway}/v1", api_key="local")
    answer = model.invoke(QUESTION)
    assert isinstance(answer.content, str) and answer.content.strip()
    assert answer.response_metadata["finish_reason"] in ("stop", "length")


def test_langchain_chat_anthropic_with_defaults(local_gateway: str) -> None:
    model = ChatAnthropic(model="smollm2", base_url=local_gateway, api_key="local")
    assert (
        model.max_tokens is not None and model.max_tokens >= 4096
    )  # the default the old 2048-token window refused
    answer = model.invoke(QUESTION)
    assert answer.content and answer.response_metadata["stop_reason"] in (
        "end_turn",
        "max_tokens",
    )
