"""The official `openai` SDK's Responses client against the gateway.

Route `chat` has a Chat-Completions-only fake upstream: every Responses request is translated
through the canonical model, and the gateway keeps the conversation (SQLite in a temp folder).
Route `native` has a Responses-speaking fake: bodies pass through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_upstream import Reply, chat_completion, chat_stream
from tests.support.responses_gateway import (
    ResponsesGateway,
    hosted_response,
    hosted_stream,
    responses_gateway,
)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[ResponsesGateway]:
    with responses_gateway({"sqlite_path": str(tmp_path / "state.sqlite3")}) as g:
        yield g


def client(gw: ResponsesGateway) -> openai.OpenAI:
    return gw.client()


def test_create_translates_to_chat_completions(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("Paris.", prompt_tokens=9, completion_tokens=2)))
    r = client(gw).responses.create(
        model="chat",
        input="Capital of France?",
        instructions="Be brief.",
        max_output_tokens=20,
        temperature=0.5,
    )
    assert r.output_text == "Paris."
    assert r.status == "completed" and r.id.startswith("resp_")
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (9, 2)
    assert r.usage.total_tokens == 11
    assert r.instructions == "Be brief." and r.max_output_tokens == 20 and r.model == "chat"
    assert gw.local.requests[-1].json() == {
        "model": "local-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "max_tokens": 20,
        "temperature": 0.5,
    }


def test_function_call_round_trip_by_previous_response_id(gw: ResponsesGateway) -> None:
    call = {
        "id": "call_w1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    gw.local.script(
        Reply.json(chat_completion(None, finish_reason="tool_calls", tool_calls=[call])),
        Reply.json(chat_completion("Sunny in Paris.")),
    )
    c = client(gw)
    first = c.responses.create(model="chat", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
    [item] = first.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == (
        "call_w1",
        "get_weather",
        '{"city":"Paris"}',
    )
    sent = gw.local.requests[-1].json()
    assert sent["tools"][0]["function"]["name"] == "get_weather"

    second = c.responses.create(
        model="chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny, 21C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "Sunny in Paris."
    assert second.previous_response_id == first.id
    assert gw.local.requests[-1].json()["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 21C"},
    ]


def test_stream_events_in_order_and_final_response(gw: ResponsesGateway) -> None:
    frames = chat_stream(
        ("Hel", "lo"),
        tool_calls=[("call_s", "get_weather", ['{"ci', 'ty":"Rome"}'])],
        finish_reason="tool_calls",
    )
    gw.local.script(Reply.sse(frames))
    c = client(gw)
    with c.responses.stream(model="chat", input="Hi", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "Hello"
    assert final.output[1].type == "function_call"
    assert final.output[1].arguments == '{"city":"Rome"}'
    assert final.usage is not None and final.usage.input_tokens == 11
    stored = c.responses.retrieve(final.id)
    assert (stored.id, stored.output_text, stored.status) == (final.id, "Hello", "completed")
    assert [getattr(o, "id", None) for o in stored.output] == [
        getattr(o, "id", None) for o in final.output
    ]


def test_retrieve_delete_and_input_items(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("One.")), Reply.json(chat_completion("Two.")))
    c = client(gw)
    first = c.responses.create(model="chat", input="Count")
    second = c.responses.create(model="chat", input="Go on", previous_response_id=first.id)
    assert c.responses.retrieve(first.id).output_text == "One."
    items = list(c.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "message", "message"]
    assert [i.role for i in items] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    assert items[2].content[0].text == "Go on"  # type: ignore[union-attr,index]
    newest_first = list(c.responses.input_items.list(second.id))
    assert [i.id for i in newest_first] == [i.id for i in reversed(items)]
    page = c.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.id for i in page.data] == [i.id for i in items[:2]] and page.has_more
    c.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(first.id)


def test_unknown_previous_response_is_a_404_with_code(gw: ResponsesGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gw).responses.create(model="chat", input="hi", previous_response_id="resp_nope")
    assert info.value.code == "previous_response_not_found"
    assert "resp_nope" in info.value.message
    assert gw.local.requests == []


def test_store_false_is_not_retrievable(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("ok")))
    r = client(gw).responses.create(model="chat", input="hi", store=False)
    assert r.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.retrieve(r.id)


def test_private_requests_are_not_stored_and_the_header_says_so(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("ok")))
    raw = client(gw).responses.with_raw_response.create(
        model="chat", input="hi", extra_headers={"x-serving-private": "true"}
    )
    assert raw.headers["x-serving-store"].startswith("off; private request")
    r = raw.parse()
    assert r.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.retrieve(r.id)


def test_builtin_tool_is_rejected_naming_it(gw: ResponsesGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).responses.create(model="chat", input="news?", tools=[{"type": "web_search"}])
    assert "web_search" in info.value.message
    assert info.value.param == "tools[0].type"
    assert gw.local.requests == []


def test_json_schema_format_and_reasoning_reach_chat(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion('{"city":"Paris"}')))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client(gw).responses.create(  # type: ignore[call-overload]
        model="chat",
        input="Where?",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
        reasoning={"effort": "low"},
    )
    assert json.loads(r.output_text) == {"city": "Paris"}
    sent = gw.local.requests[-1].json()
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": schema},
    }
    assert sent["reasoning_effort"] == "low"


def test_max_output_tokens_makes_an_incomplete_response(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("Par", finish_reason="length")))
    r = client(gw).responses.create(model="chat", input="hi", max_output_tokens=1)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"


def test_stream_cut_ends_with_failed_response(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.sse(chat_stream(("a", "b", "c")), cut_after=3))
    with client(gw).responses.stream(model="chat", input="hi") as stream:
        events = list(stream)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
    assert "stream" in events[-2].message  # type: ignore[union-attr]


def test_unknown_model_and_bad_body_use_the_openai_envelope(gw: ResponsesGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gw).responses.create(model="nope", input="hi")
    assert info.value.code == "model_not_found"
    bad = httpx.post(gw.url + "/v1/responses", json={"model": "chat", "input": 5})
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


def test_cancel_is_refused_for_foreground_responses(gw: ResponsesGateway) -> None:
    gw.local.script(Reply.json(chat_completion("ok")))
    c = client(gw)
    r = c.responses.create(model="chat", input="hi")
    with pytest.raises(openai.BadRequestError) as info:
        c.responses.cancel(r.id)
    assert "background" in info.value.message
    with pytest.raises(openai.NotFoundError):
        c.responses.cancel("resp_unknown")


# ---- a Responses-speaking upstream: pass-through ---------------------------------------------


def test_native_upstream_gets_the_body_untouched(gw: ResponsesGateway) -> None:
    gw.hosted.script(Reply.json(hosted_response("Hi there")))
    body: dict[str, Any] = {"model": "native", "input": "hi", "tools": [{"type": "web_search"}]}
    r = client(gw).responses.create(**body, extra_body={"vendor": {"x": 1}})
    body["vendor"] = {"x": 1}
    assert r.output_text == "Hi there" and r.id == "resp_hosted1"
    sent = gw.hosted.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.json() == {**body, "model": "hosted-model"}
    assert client(gw).responses.retrieve("resp_hosted1").output_text == "Hi there"


def test_native_stream_is_relayed_and_stored(gw: ResponsesGateway) -> None:
    gw.hosted.script(Reply.sse(hosted_stream("Streamed", "resp_hs")))
    with client(gw).responses.stream(model="native", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Streamed" and final.id == "resp_hs"
    assert client(gw).responses.retrieve("resp_hs").output_text == "Streamed"


def test_native_stream_cut_ends_with_an_error_event(gw: ResponsesGateway) -> None:
    gw.hosted.script(Reply.sse(hosted_stream("x"), cut_after=5))
    with client(gw).responses.stream(model="native", input="hi") as stream:
        events = list(stream)
    assert events[-1].type == "error"
    assert events[-1].sequence_number == 5
