"""Which client class serves which upstream dialect."""

from __future__ import annotations

from serving.gateway.settings import Upstream
from serving.gateway.upstreams.anthropic import AnthropicClient
from serving.gateway.upstreams.base import UpstreamClient
from serving.gateway.upstreams.gemini import GeminiClient
from serving.gateway.upstreams.openai_compat import OpenAICompatClient
from serving.gateway.upstreams.responses import ResponsesClient
from serving.gateway.upstreams.transport import Transport

_CLIENTS: dict[str, type[UpstreamClient]] = {
    "openai": OpenAICompatClient,
    "anthropic": AnthropicClient,
    "gemini": GeminiClient,
    "responses": ResponsesClient,
}


def build_client(config: Upstream, transport: Transport) -> UpstreamClient:
    try:
        cls = _CLIENTS[config.dialect]
    except KeyError as exc:
        raise ValueError(
            f"upstream {config.name!r}: no client for dialect {config.dialect!r} yet"
        ) from exc
    return cls(config, transport)
