"""A gateway with a Responses route in front of scripted fakes, and state kept where a test says.

`hosted` speaks Responses itself (a Responses-capable OpenAI upstream: forwarded untouched);
`local` speaks Chat Completions only (the Responses request is translated). Route `chat` goes
to `local` only; route `failover` tries `hosted`, then `local`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai

from serving.gateway.app import create_app
from serving.gateway.settings import Settings, parse_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import serve

FAST = {"connect": 1, "first_byte": 5, "total": 10, "stream_idle": 5}
NO_RETRY = {"attempts": 0}


@dataclass
class ResponsesGateway:
    url: str
    settings: Settings
    local: FakeUpstream
    hosted: FakeUpstream
    _client: openai.OpenAI | None = None

    def client(self) -> openai.OpenAI:
        """One `openai` client for the gateway's life, closed with it (no socket is left for
        the garbage collector to report)."""
        if self._client is None:
            self._client = openai.OpenAI(base_url=self.url + "/v1", api_key="k", max_retries=0)
        return self._client


def responses_settings(
    local: str, hosted: str, state: dict[str, Any], server: dict[str, Any] | None = None
) -> Settings:
    return parse_settings(
        {
            "server": server or {},
            "upstreams": [
                {"name": "local", "base_url": local + "/v1", "timeouts": FAST, "retry": NO_RETRY},
                {
                    "name": "hosted",
                    "base_url": hosted + "/v1",
                    "locality": "hosted",
                    "responses_api": True,
                    "timeouts": FAST,
                    "retry": NO_RETRY,
                },
            ],
            "routes": [
                {"model": "chat", "targets": [{"upstream": "local", "model": "local-model"}]},
                {"model": "native", "targets": [{"upstream": "hosted", "model": "hosted-model"}]},
                {
                    "model": "failover",
                    "targets": [
                        {"upstream": "hosted", "model": "hosted-model"},
                        {"upstream": "local", "model": "local-model"},
                    ],
                },
            ],
            "privacy": {"detect": False},
            "state": state,
        },
        "responses-test",
    )


@contextmanager
def responses_gateway(
    state: dict[str, Any], server: dict[str, Any] | None = None
) -> Iterator[ResponsesGateway]:
    local, hosted = FakeUpstream(), FakeUpstream()
    with serve(local.app) as local_url, serve(hosted.app) as hosted_url:
        settings = responses_settings(local_url, hosted_url, state, server)
        with serve(create_app(settings)) as url:
            gw = ResponsesGateway(url, settings, local, hosted)
            try:
                yield gw
            finally:
                if gw._client is not None:
                    gw._client.close()


def sse(events: list[dict[str, Any]]) -> list[bytes]:
    """Responses SSE frames (`event:` named, numbered in order)."""
    out = []
    for n, event in enumerate(events):
        body = {**event, "sequence_number": n}
        out.append(f"event: {event['type']}\ndata: {json.dumps(body)}\n\n".encode())
    return out


def hosted_response(text: str, response_id: str = "resp_hosted1") -> dict[str, Any]:
    """A whole Responses answer from a Responses-speaking upstream."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": "hosted-model",
        "output": [
            {
                "id": "msg_hosted1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 5,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 7,
        },
    }


def hosted_stream(text: str, response_id: str = "resp_hosted1") -> list[bytes]:
    final = hosted_response(text, response_id)
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    item = final["output"][0]
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    return sse(
        [
            {"type": "response.created", "response": start},
            {"type": "response.in_progress", "response": start},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            },
            {"type": "response.content_part.added", **ids, "part": part},
            {"type": "response.output_text.delta", **ids, "delta": text, "logprobs": []},
            {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": final},
        ]
    )
