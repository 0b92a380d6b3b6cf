"""Pure conversions between Gemini `generateContent` and the canonical model.

Client side: `request_to_canonical`, `response_from_canonical`.
Upstream side: `request_from_canonical`, `response_to_canonical`.

Gemini names function calls but often gives them no id; the other dialects pair a call with
its result by id. Ids are therefore synthesised (`call_<hash>`, stable for a given position in
a conversation) and a `functionResponse` without an id takes the oldest unanswered call of the
same name.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict, deque
from typing import Any, Literal

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic.translate import parse_args
from serving.gateway.dialects.gemini import protocol as p
from serving.gateway.errors import InvalidRequest, UpstreamError
from serving.gateway.jsoncodec import dumps

_CF = c.StopReason.CONTENT_FILTER
_FINISH_IN = {
    "STOP": c.StopReason.END_TURN,
    "MAX_TOKENS": c.StopReason.MAX_TOKENS,
    "SAFETY": _CF,
    "RECITATION": _CF,
    "BLOCKLIST": _CF,
    "PROHIBITED_CONTENT": _CF,
    "SPII": _CF,
    "IMAGE_SAFETY": _CF,
    "IMAGE_PROHIBITED_CONTENT": _CF,
    "IMAGE_RECITATION": _CF,
}  # anything else (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...) ends the turn
_FINISH_OUT = {
    c.StopReason.END_TURN: "STOP",
    c.StopReason.STOP_SEQUENCE: "STOP",  # Gemini does not say which stop string fired
    c.StopReason.TOOL_USE: "STOP",  # Gemini reports STOP for a turn that calls functions
    c.StopReason.MAX_TOKENS: "MAX_TOKENS",
    c.StopReason.CONTENT_FILTER: "SAFETY",
}
_MODE_IN = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "any", "NONE": "none"}
_RESULT_KEYS = ("result", "output", "content")
METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def finish_reason_out(stop: c.Stop) -> str:
    return _FINISH_OUT[stop.reason]


def stop_from_finish(reason: str | None, called: bool) -> c.Stop:
    if called and reason in (None, "STOP"):
        return c.Stop(c.StopReason.TOOL_USE)
    return c.Stop(_FINISH_IN.get(reason or "STOP", c.StopReason.END_TURN))


def synth_call_id(*key: object) -> str:
    digest = hashlib.sha256(":".join(map(str, key)).encode()).hexdigest()
    return "call_" + digest[:24]


# ---- client request -> canonical -------------------------------------------------------------


class _CallIds:
    """Pairs function responses with calls: by id when given, else by name in call order."""

    def __init__(self, contents: list[p.Content]) -> None:
        self._pending: defaultdict[str, deque[str]] = defaultdict(deque)
        # Ids some response names explicitly: an id-less response never takes one of those.
        self._claimed = {
            part.function_response.id
            for content in contents
            for part in content.parts
            if part.function_response is not None and part.function_response.id
        }

    def call(self, fn: p.FunctionCall, where: tuple[int, int]) -> str:
        call_id = fn.id or synth_call_id(*where, fn.name)
        self._pending[fn.name].append(call_id)
        return call_id

    def response(self, fn: p.FunctionResponse, where: tuple[int, int]) -> str:
        pending = self._pending[fn.name]
        if fn.id:
            if fn.id in pending:
                pending.remove(fn.id)
            return fn.id
        free = next((call_id for call_id in pending if call_id not in self._claimed), None)
        if free is None:
            return synth_call_id(*where, fn.name)
        pending.remove(free)
        return free


def _result_in(fn: p.FunctionResponse, call_id: str) -> c.ToolResult:
    """`{"result": "..."}` (or output/content) is the usual wrapper; unwrap it to plain text."""
    response = fn.response
    if set(response) == {"error"}:
        value = response["error"]
        text = value if isinstance(value, str) else dumps(value)
        return c.ToolResult(call_id, [c.Text(text)], is_error=True, name=fn.name)
    if len(response) == 1:
        key, value = next(iter(response.items()))
        if key in _RESULT_KEYS and isinstance(value, str):
            return c.ToolResult(call_id, [c.Text(value)], name=fn.name)
    return c.ToolResult(call_id, [c.Text(dumps(response))], name=fn.name)


def _part_in(part: p.Part, where: tuple[int, int], ids: _CallIds) -> c.Block | None:
    if part.thought:
        return None  # a model's earlier thoughts carry no meaning for another model family
    if part.text is not None:
        return c.Text(part.text)
    if part.inline_data is not None and part.inline_data.mime_type.startswith("image/"):
        return c.Image(media_type=part.inline_data.mime_type, data=part.inline_data.data)
    if part.file_data is not None and (part.file_data.mime_type or "image/").startswith("image/"):
        return c.Image(media_type=part.file_data.mime_type, url=part.file_data.file_uri)
    if part.function_call is not None:
        fn = part.function_call
        return c.ToolCall(ids.call(fn, where), fn.name, dumps(fn.args))
    if part.function_response is not None:
        return _result_in(part.function_response, ids.response(part.function_response, where))
    kinds = ", ".join(sorted(part.model_dump(exclude_none=True, by_alias=True))) or "empty"
    raise InvalidRequest(
        f"part ({kinds}) is only supported by Gemini upstreams",
        param=f"contents[{where[0]}].parts[{where[1]}]",
    )


def json_schema_from_gemini(schema: Any) -> Any:
    """Gemini's OpenAPI-subset Schema → JSON Schema: lower-case types, `nullable` as a type."""
    if isinstance(schema, list):
        return [json_schema_from_gemini(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "propertyOrdering":
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: json_schema_from_gemini(v) for name, v in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = json_schema_from_gemini(value)
        elif key != "nullable":
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


def _tools_in(tools: list[p.Tool] | None) -> list[c.Tool]:
    out: list[c.Tool] = []
    for i, tool in enumerate(tools or []):
        if tool.model_extra:
            kinds = ", ".join(sorted(tool.model_extra))
            raise InvalidRequest(
                f"built-in tools ({kinds}) are only supported by Gemini upstreams",
                param=f"tools[{i}]",
            )
        for fn in tool.function_declarations or []:
            if fn.parameters_json_schema is not None:
                schema = fn.parameters_json_schema
            elif fn.parameters is not None:
                schema = json_schema_from_gemini(fn.parameters)
            else:
                schema = {"type": "object", "properties": {}}
            out.append(c.Tool(fn.name, fn.description, schema))
    return out


def _tool_choice_in(config: p.ToolConfig | None) -> c.ToolChoice | None:
    fcc = config.function_calling_config if config else None
    if fcc is None or fcc.mode in (None, "MODE_UNSPECIFIED"):
        return None
    names = fcc.allowed_function_names or []
    if fcc.mode == "ANY" and len(names) == 1:
        return c.ToolChoice("tool", names[0])
    return c.ToolChoice(_MODE_IN[fcc.mode])  # type: ignore[arg-type]


def _format_in(config: p.GenerationConfig) -> c.ResponseFormat | None:
    if config.response_mime_type != "application/json":
        return None
    if config.response_json_schema is not None:
        return c.ResponseFormat("json_schema", config.response_json_schema)
    if config.response_schema is not None:
        return c.ResponseFormat("json_schema", json_schema_from_gemini(config.response_schema))
    return c.ResponseFormat("json")


def _sampling_in(config: p.GenerationConfig) -> c.Sampling:
    if config.candidate_count not in (None, 1):
        raise InvalidRequest(
            "candidateCount > 1 is only supported by Gemini upstreams",
            param="generationConfig.candidateCount",
        )
    if config.response_logprobs:
        raise InvalidRequest(
            "responseLogprobs is only supported by Gemini upstreams",
            param="generationConfig.responseLogprobs",
        )
    return c.Sampling(
        max_tokens=config.max_output_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        stop=list(config.stop_sequences or []),
        seed=config.seed,
        presence_penalty=config.presence_penalty,
        frequency_penalty=config.frequency_penalty,
    )


def _messages_in(contents: list[p.Content]) -> list[c.Message]:
    ids = _CallIds(contents)
    messages: list[c.Message] = []
    for i, content in enumerate(contents):
        role: Literal["user", "assistant"] = "assistant" if content.role == "model" else "user"
        blocks = [b for j, part in enumerate(content.parts) if (b := _part_in(part, (i, j), ids))]
        if messages and messages[-1].role == role:
            messages[-1].content.extend(blocks)  # consecutive same-role turns merge
        else:
            messages.append(c.Message(role, blocks))
    return messages


def request_to_canonical(
    req: p.GenerateContentRequest, model: str, *, stream: bool = False
) -> c.ChatRequest:
    """A Gemini client request (the model comes from the URL path), for another dialect."""
    if req.cached_content:
        raise InvalidRequest(
            "cachedContent is only supported by Gemini upstreams", param="cachedContent"
        )
    config = req.generation_config or p.GenerationConfig()
    system = req.system_instruction.parts if req.system_instruction else []
    return c.ChatRequest(
        model=model,
        messages=_messages_in(req.contents),
        system=[c.Text(part.text) for part in system if part.text],
        tools=_tools_in(req.tools),
        tool_choice=_tool_choice_in(req.tool_config),
        sampling=_sampling_in(config),
        response_format=_format_in(config),
        stream=stream,
    )


def count_request_to_canonical(req: p.CountTokensRequest, model: str) -> c.ChatRequest:
    if req.generate_content_request is not None:
        return request_to_canonical(req.generate_content_request, model)
    if not req.contents:
        raise InvalidRequest("contents or generateContentRequest is required", param="contents")
    return request_to_canonical(p.GenerateContentRequest(contents=req.contents), model)


# ---- canonical -> upstream request -----------------------------------------------------------


def _result_out(block: c.ToolResult, names: dict[str, str]) -> dict[str, Any]:
    name = block.name or names.get(block.call_id)
    if name is None:
        raise InvalidRequest(f"tool result {block.call_id!r} answers no earlier tool call")
    text = "".join(b.text for b in block.content if isinstance(b, c.Text))
    response: Any = None
    if text.lstrip().startswith("{"):
        try:
            response = json.loads(text)
        except json.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"error" if block.is_error else "result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _part_out(block: c.Block, names: dict[str, str]) -> dict[str, Any]:
    if isinstance(block, c.Text):
        return {"text": block.text}
    if isinstance(block, c.Image):
        mime = block.media_type or "image/png"
        if block.data is not None:
            return {"inlineData": {"mimeType": mime, "data": block.data}}
        return {"fileData": {"mimeType": mime, "fileUri": block.url}}
    if isinstance(block, c.ToolCall):
        names[block.id] = block.name
        return {"functionCall": {"name": block.name, "args": parse_args(block.arguments)}}
    return _result_out(block, names)


def _config_out(req: c.ChatRequest) -> dict[str, Any]:
    s = req.sampling
    config: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", s.max_tokens),
        ("temperature", s.temperature),
        ("topP", s.top_p),
        ("topK", s.top_k),
        ("seed", s.seed),
        ("presencePenalty", s.presence_penalty),
        ("frequencyPenalty", s.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
    if s.stop:
        config["stopSequences"] = s.stop
    fmt = req.response_format
    if fmt is not None and fmt.kind != "text":
        config["responseMimeType"] = "application/json"
        if fmt.kind == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    return config


def _tool_config_out(choice: c.ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        fcc: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        fcc = {"mode": {"auto": "AUTO", "any": "ANY", "none": "NONE"}[choice.mode]}
    return {"functionCallingConfig": fcc}


def request_from_canonical(req: c.ChatRequest) -> dict[str, Any]:
    """The body for a Gemini upstream (the model goes in the URL path, not the body)."""
    names: dict[str, str] = {}
    contents = [
        {
            "role": "model" if m.role == "assistant" else "user",
            "parts": [_part_out(b, names) for b in m.content],
        }
        for m in req.messages
    ]
    body: dict[str, Any] = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in req.system]}
    if req.tools:
        declarations = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "parametersJsonSchema": t.parameters,
            }
            for t in req.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    if req.tool_choice is not None and (req.tools or req.tool_choice.mode == "none"):
        body["toolConfig"] = _tool_config_out(req.tool_choice)
    config = _config_out(req)
    if config:
        body["generationConfig"] = config
    return body


# ---- upstream response -> canonical ----------------------------------------------------------


def usage_to_canonical(usage: dict[str, Any] | None) -> c.Usage:
    """Thinking tokens are billed as output, as the other dialects count reasoning."""
    if not usage:
        return c.Usage()
    return c.Usage(
        input_tokens=int(usage.get("promptTokenCount") or 0),
        output_tokens=int(usage.get("candidatesTokenCount") or 0)
        + int(usage.get("thoughtsTokenCount") or 0),
        cached_input_tokens=int(usage.get("cachedContentTokenCount") or 0),
    )


def call_from_part(fn: dict[str, Any]) -> c.ToolCall:
    call_id = fn.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    return c.ToolCall(str(call_id), str(fn.get("name") or ""), dumps(fn.get("args") or {}))


def response_to_canonical(body: dict[str, Any]) -> c.ChatResponse:
    candidates = body.get("candidates") or []
    blocked = bool((body.get("promptFeedback") or {}).get("blockReason"))
    if not isinstance(candidates, list) or not (candidates or blocked):
        raise UpstreamError("upstream response is not a Gemini GenerateContentResponse")
    usage = usage_to_canonical(body.get("usageMetadata"))
    rid, model = str(body.get("responseId") or ""), str(body.get("modelVersion") or "")
    if not candidates:  # the prompt itself was blocked: no candidate at all
        return c.ChatResponse(rid, model, [], c.Stop(_CF), usage)
    candidate = candidates[0]
    blocks: list[c.Text | c.ToolCall] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            if blocks and isinstance(blocks[-1], c.Text):
                blocks[-1].text += part["text"]
            else:
                blocks.append(c.Text(part["text"]))
        elif isinstance(part.get("functionCall"), dict):
            blocks.append(call_from_part(part["functionCall"]))
    called = any(isinstance(b, c.ToolCall) for b in blocks)
    stop = stop_from_finish(candidate.get("finishReason"), called)
    return c.ChatResponse(rid, model, blocks, stop, usage)


# ---- canonical -> client response ------------------------------------------------------------


def usage_out(usage: c.Usage) -> dict[str, Any]:
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    return out


def call_out(call: c.ToolCall) -> dict[str, Any]:
    """The call keeps its id, so a client that echoes it back pairs the result exactly."""
    return {"functionCall": {"id": call.id, "name": call.name, "args": parse_args(call.arguments)}}


def response_from_canonical(resp: c.ChatResponse, model: str) -> dict[str, Any]:
    parts = [
        {"text": b.text} if isinstance(b, c.Text) else call_out(b)
        for b in resp.blocks
        if not (isinstance(b, c.Text) and not b.text)
    ]
    candidate = {
        "content": {"role": "model", "parts": parts},
        "finishReason": finish_reason_out(resp.stop),
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": usage_out(resp.usage),
        "modelVersion": model,
        "responseId": resp.id or uuid.uuid4().hex,
    }


def model_info(name: str) -> dict[str, Any]:
    """A route name as a Gemini `Model` (what `models.list()` and `models.get()` read)."""
    return {
        "name": f"models/{name}",
        "displayName": name,
        "supportedGenerationMethods": list(METHODS),
    }
