"""Gemini translation rules that goldens show poorly: refusals, mappings, edge cases."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.dialects.gemini import protocol as gp
from serving.gateway.dialects.gemini import stream as gs
from serving.gateway.dialects.gemini import translate as gt
from serving.gateway.errors import InvalidRequest, Overloaded, RateLimited, UpstreamError


def to_canonical(data: dict[str, Any]) -> c.ChatRequest:
    return gt.request_to_canonical(gp.GenerateContentRequest.model_validate(data), "m")


USER_HI = {"role": "user", "parts": [{"text": "Hi"}]}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
        ({"generationConfig": {"responseLogprobs": True}}, "generationConfig.responseLogprobs"),
        ({"cachedContent": "cachedContents/abc"}, "cachedContent"),
        ({"tools": [{"googleSearch": {}}]}, "tools[0]"),
        (
            {"contents": [{"parts": [{"text": "x"}, {"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[1]",
        ),
        (
            {
                "contents": [
                    {"parts": [{"inlineData": {"mimeType": "application/pdf", "data": "J"}}]}
                ]
            },
            "contents[0].parts[0]",
        ),
    ],
)
def test_what_only_gemini_can_serve_is_refused_with_the_field(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_canonical({"contents": [USER_HI], **extra})
    assert caught.value.param == param
    assert "only supported by Gemini upstreams" in caught.value.message


def test_snake_case_fields_are_accepted_as_proto_json_allows() -> None:
    req = to_canonical(
        {
            "contents": [USER_HI],
            "system_instruction": {"parts": [{"text": "S"}]},
            "generation_config": {"max_output_tokens": 5, "stop_sequences": ["x"]},
        }
    )
    assert [t.text for t in req.system] == ["S"]
    assert (req.sampling.max_tokens, req.sampling.stop) == (5, ["x"])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, c.ToolChoice("auto")),
        ({"mode": "VALIDATED"}, c.ToolChoice("auto")),
        ({"mode": "NONE"}, c.ToolChoice("none")),
        ({"mode": "ANY"}, c.ToolChoice("any")),
        ({"mode": "ANY", "allowedFunctionNames": ["f"]}, c.ToolChoice("tool", "f")),
        ({"mode": "ANY", "allowedFunctionNames": ["f", "g"]}, c.ToolChoice("any")),
        ({"mode": "MODE_UNSPECIFIED"}, None),
    ],
)
def test_function_calling_modes(config: dict[str, Any], expected: c.ToolChoice | None) -> None:
    req = to_canonical({"contents": [USER_HI], "toolConfig": {"functionCallingConfig": config}})
    assert req.tool_choice == expected


@pytest.mark.parametrize(
    ("reason", "called", "expected"),
    [
        ("STOP", False, c.StopReason.END_TURN),
        ("STOP", True, c.StopReason.TOOL_USE),
        (None, True, c.StopReason.TOOL_USE),
        ("MAX_TOKENS", False, c.StopReason.MAX_TOKENS),
        ("MAX_TOKENS", True, c.StopReason.MAX_TOKENS),
        ("SAFETY", False, c.StopReason.CONTENT_FILTER),
        ("RECITATION", False, c.StopReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", False, c.StopReason.CONTENT_FILTER),
        ("MALFORMED_FUNCTION_CALL", False, c.StopReason.END_TURN),
        ("OTHER", False, c.StopReason.END_TURN),
    ],
)
def test_finish_reasons(reason: str | None, called: bool, expected: c.StopReason) -> None:
    assert gt.stop_from_finish(reason, called).reason == expected


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (c.StopReason.END_TURN, "STOP"),
        (c.StopReason.STOP_SEQUENCE, "STOP"),
        (c.StopReason.TOOL_USE, "STOP"),
        (c.StopReason.MAX_TOKENS, "MAX_TOKENS"),
        (c.StopReason.CONTENT_FILTER, "SAFETY"),
    ],
)
def test_finish_reasons_out(reason: c.StopReason, expected: str) -> None:
    assert gt.finish_reason_out(c.Stop(reason)) == expected


def test_call_ids_are_stable_and_pair_results_by_name_and_order() -> None:
    data = {
        "contents": [
            USER_HI,
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "f", "args": {"n": 1}}},
                    {"functionCall": {"name": "f", "args": {"n": 2}}},
                    {"functionCall": {"name": "g", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "g", "response": {"result": "G"}}},
                    {"functionResponse": {"name": "f", "response": {"result": "F1"}}},
                    {"functionResponse": {"name": "f", "response": {"result": "F2"}}},
                ],
            },
        ]
    }
    first, second = to_canonical(data), to_canonical(data)
    calls = [b for b in first.messages[1].content if isinstance(b, c.ToolCall)]
    results = [b for b in first.messages[2].content if isinstance(b, c.ToolResult)]
    assert [b.id for b in calls] == [
        b.id for b in second.messages[1].content if isinstance(b, c.ToolCall)
    ]
    assert len({b.id for b in calls}) == 3
    by_id = {r.call_id: r.content[0] for r in results}
    assert [by_id[call.id] for call in calls] == [c.Text("F1"), c.Text("F2"), c.Text("G")]


def test_a_result_for_no_call_fails_clearly_towards_gemini() -> None:
    req = c.ChatRequest("m", [c.Message("user", [c.ToolResult("call_unknown", [c.Text("x")])])])
    with pytest.raises(InvalidRequest, match="call_unknown"):
        gt.request_from_canonical(req)


@pytest.mark.parametrize(
    ("text", "is_error", "expected"),
    [
        ('{"temp": 21}', False, {"temp": 21}),
        ("[1, 2]", False, {"result": "[1, 2]"}),
        ("{not json", False, {"result": "{not json"}),
        ("boom", True, {"error": "boom"}),
    ],
)
def test_tool_results_become_objects(text: str, is_error: bool, expected: Any) -> None:
    call = c.ToolCall("call_1", "f", "{}")
    result = c.ToolResult("call_1", [c.Text(text)], is_error=is_error)
    req = c.ChatRequest("m", [c.Message("assistant", [call]), c.Message("user", [result])])
    body = gt.request_from_canonical(req)
    assert body["contents"][1]["parts"][0]["functionResponse"] == {
        "name": "f",
        "response": expected,
    }


def test_count_request_forms() -> None:
    bare = gp.CountTokensRequest.model_validate({"contents": [USER_HI]})
    assert gt.count_request_to_canonical(bare, "m").messages == [c.Message("user", [c.Text("Hi")])]
    whole = gp.CountTokensRequest.model_validate(
        {
            "generateContentRequest": {
                "model": "models/m",
                "contents": [USER_HI],
                "systemInstruction": {"parts": [{"text": "S"}]},
            }
        }
    )
    assert gt.count_request_to_canonical(whole, "m").system == [c.Text("S")]
    with pytest.raises(InvalidRequest):
        gt.count_request_to_canonical(gp.CountTokensRequest.model_validate({}), "m")


def test_a_body_that_is_not_a_response_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        gt.response_to_canonical({"unexpected": True})


def test_stream_of_a_blocked_prompt_finishes_as_content_filter() -> None:
    decoder = gs.ChunkDecoder()
    events = decoder.feed({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}})
    events += decoder.done()
    assert isinstance(events[0], c.Start)
    assert events[-1] == c.Finish(c.Stop(c.StopReason.CONTENT_FILTER), c.Usage())


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (InvalidRequest("x"), 400, "INVALID_ARGUMENT"),
        (RateLimited("x"), 429, "RESOURCE_EXHAUSTED"),
        (Overloaded("x"), 503, "UNAVAILABLE"),
        (UpstreamError("x"), 502, "UNAVAILABLE"),
        (UpstreamError("x", status=504), 504, "DEADLINE_EXCEEDED"),
        (RuntimeError("x"), 500, "INTERNAL"),
    ],
)
def test_google_error_envelope(error: Exception, status: int, name: str) -> None:
    assert gs.error_body(error) == (
        status,
        {"error": {"code": status, "message": "x", "status": name}},
    )
