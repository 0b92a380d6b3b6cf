"""Pure conversions between OpenAI Chat Completions and the canonical model.

Client side: `request_to_canonical` and `response_from_canonical`.
Upstream side: `request_from_canonical` and `response_to_canonical`.
"""

from __future__ import annotations

import time
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.openai import protocol as p
from serving.gateway.errors import InvalidRequest, UpstreamError

_FINISH_TO_STOP = {
    "stop": c.StopReason.END_TURN,
    "length": c.StopReason.MAX_TOKENS,
    "tool_calls": c.StopReason.TOOL_USE,
    "function_call": c.StopReason.TOOL_USE,
    "content_filter": c.StopReason.CONTENT_FILTER,
}
_STOP_TO_FINISH = {
    c.StopReason.END_TURN: "stop",
    c.StopReason.STOP_SEQUENCE: "stop",
    c.StopReason.MAX_TOKENS: "length",
    c.StopReason.TOOL_USE: "tool_calls",
    c.StopReason.CONTENT_FILTER: "content_filter",
}


# ---- client request -> canonical -------------------------------------------------------------


def _image_from_url(url: str) -> c.Image:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0] or None
        return c.Image(media_type=media_type, data=data)
    return c.Image(url=url)


def _text_of(content: str | list[p.TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def _user_blocks(content: str | list[p.ContentPart], where: str) -> list[c.Block]:
    if isinstance(content, str):
        return [c.Text(content)]
    blocks: list[c.Block] = []
    for i, part in enumerate(content):
        if isinstance(part, p.TextPart):
            blocks.append(c.Text(part.text))
        elif isinstance(part, p.ImagePart):
            blocks.append(_image_from_url(part.image_url.url))
        else:
            raise InvalidRequest(
                f"content part type {part.type!r} is not supported by this model's upstream",
                param=f"{where}.content[{i}]",
            )
    return blocks


def _assistant_blocks(msg: p.AssistantMessage) -> list[c.Block]:
    blocks: list[c.Block] = []
    if isinstance(msg.content, str):
        if msg.content:
            blocks.append(c.Text(msg.content))
    elif msg.content:
        text = "".join(part.text for part in msg.content if isinstance(part, p.TextPart))
        if text:
            blocks.append(c.Text(text))
    for call in msg.tool_calls or []:
        blocks.append(c.ToolCall(call.id, call.function.name, call.function.arguments))
    return blocks


def _append(messages: list[c.Message], role: str, blocks: list[c.Block]) -> None:
    """Consecutive turns of one role merge, as Anthropic and Gemini require."""
    if messages and messages[-1].role == role:
        messages[-1].content.extend(blocks)
    else:
        messages.append(c.Message(role="user" if role == "user" else "assistant", content=blocks))


def _tool_choice(req: p.ChatCompletionRequest) -> c.ToolChoice | None:
    parallel = req.parallel_tool_calls is not False
    choice = req.tool_choice
    if choice is None:
        return c.ToolChoice(parallel=parallel) if req.parallel_tool_calls is False else None
    if isinstance(choice, p.NamedToolChoice):
        return c.ToolChoice("tool", choice.function.name, parallel)
    mode = {"none": "none", "auto": "auto", "required": "any"}[choice]
    return c.ToolChoice(mode, None, parallel)  # type: ignore[arg-type]


def _response_format(fmt: p.ResponseFormat | None) -> c.ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return c.ResponseFormat("json")
    if fmt.json_schema is None:
        raise InvalidRequest("response_format.json_schema is required", param="response_format")
    return c.ResponseFormat("json_schema", fmt.json_schema.schema_, fmt.json_schema.name)


def request_to_canonical(req: p.ChatCompletionRequest) -> c.ChatRequest:
    """An OpenAI client request, for an upstream of another dialect."""
    if req.n not in (None, 1):
        raise InvalidRequest("n > 1 is only supported by OpenAI-compatible upstreams", param="n")
    if req.logprobs:
        raise InvalidRequest(
            "logprobs are only supported by OpenAI-compatible upstreams", param="logprobs"
        )
    if req.logit_bias:
        raise InvalidRequest(
            "logit_bias is only supported by OpenAI-compatible upstreams", param="logit_bias"
        )
    system: list[c.Text] = []
    messages: list[c.Message] = []
    for i, msg in enumerate(req.messages):
        if isinstance(msg, p.SystemMessage | p.DeveloperMessage):
            system.append(c.Text(_text_of(msg.content)))
        elif isinstance(msg, p.UserMessage):
            _append(messages, "user", _user_blocks(msg.content, f"messages[{i}]"))
        elif isinstance(msg, p.AssistantMessage):
            _append(messages, "assistant", _assistant_blocks(msg))
        else:
            result = c.ToolResult(msg.tool_call_id, [c.Text(_text_of(msg.content))])
            _append(messages, "user", [result])
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    tools = [
        c.Tool(t.function.name, t.function.description, t.function.parameters or _EMPTY_SCHEMA)
        for t in req.tools or []
    ]
    return c.ChatRequest(
        model=req.model,
        messages=messages,
        system=system,
        tools=tools,
        tool_choice=_tool_choice(req),
        sampling=c.Sampling(
            max_tokens=req.max_completion_tokens or req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=stop,
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
        ),
        response_format=_response_format(req.response_format),
        stream=bool(req.stream),
        user=req.user,
    )


_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


# ---- canonical -> upstream request -----------------------------------------------------------


def _image_url(image: c.Image) -> dict[str, Any]:
    url = image.url or f"data:{image.media_type or 'image/png'};base64,{image.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(msg: c.Message) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, one per call, ahead of the user's own content."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in msg.content:
        if isinstance(block, c.ToolResult):
            text = "".join(b.text for b in block.content if isinstance(b, c.Text))
            out.append({"role": "tool", "tool_call_id": block.call_id, "content": text})
        elif isinstance(block, c.Text):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, c.Image):
            parts.append(_image_url(block))
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _assistant_message(msg: c.Message) -> dict[str, Any]:
    text = "".join(b.text for b in msg.content if isinstance(b, c.Text))
    calls = [
        {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": b.arguments}}
        for b in msg.content
        if isinstance(b, c.ToolCall)
    ]
    out: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _tool_choice_out(choice: c.ToolChoice) -> str | dict[str, Any]:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return {"auto": "auto", "any": "required", "none": "none"}[choice.mode]


def request_from_canonical(
    req: c.ChatRequest, model: str, *, include_usage: bool = True
) -> dict[str, Any]:
    """The body to send to an OpenAI-compatible upstream."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(t.text for t in req.system)})
    for msg in req.messages:
        if msg.role == "user":
            messages.extend(_user_messages(msg))
        else:
            messages.append(_assistant_message(msg))
    body: dict[str, Any] = {"model": model, "messages": messages}
    s = req.sampling
    for key, value in (
        ("max_tokens", s.max_tokens),
        ("temperature", s.temperature),
        ("top_p", s.top_p),
        ("seed", s.seed),
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
        ("user", req.user),
    ):
        if value is not None:
            body[key] = value
    if s.stop:
        body["stop"] = s.stop
    if s.top_k is not None:
        body["top_k"] = s.top_k  # an extension vLLM accepts; hosted OpenAI does not
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
    if req.tool_choice is not None:
        if req.tools or req.tool_choice.mode == "none":
            body["tool_choice"] = _tool_choice_out(req.tool_choice)
        if req.tools and not req.tool_choice.parallel:
            body["parallel_tool_calls"] = False
    fmt = req.response_format
    if fmt is not None and fmt.kind == "json":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.kind == "json_schema":
        schema = {"name": fmt.name or "response", "schema": fmt.schema or {}}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    effort = req.extras.get("reasoning_effort")  # from a Responses client's `reasoning`
    if isinstance(effort, str):
        body["reasoning_effort"] = effort
    if req.stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


# ---- upstream response -> canonical ----------------------------------------------------------


def stop_from_choice(finish_reason: str | None, stop_reason: Any) -> c.Stop:
    """vLLM reports the matched stop string in its non-standard `stop_reason` field."""
    if finish_reason == "stop" and isinstance(stop_reason, str):
        return c.Stop(c.StopReason.STOP_SEQUENCE, stop_reason)
    return c.Stop(_FINISH_TO_STOP.get(finish_reason or "stop", c.StopReason.END_TURN))


def usage_to_canonical(usage: dict[str, Any] | None) -> c.Usage:
    if not usage:
        return c.Usage()
    details = usage.get("prompt_tokens_details") or {}
    return c.Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def response_to_canonical(body: dict[str, Any]) -> c.ChatResponse:
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise UpstreamError("upstream response has no choices[0].message") from exc
    blocks: list[c.Text | c.ToolCall] = []
    if message.get("content"):
        blocks.append(c.Text(message["content"]))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        blocks.append(
            c.ToolCall(call.get("id") or "", fn.get("name", ""), fn.get("arguments") or "{}")
        )
    stop = stop_from_choice(choice.get("finish_reason"), choice.get("stop_reason"))
    return c.ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        blocks=blocks,
        stop=called_stop(stop, any(isinstance(b, c.ToolCall) for b in blocks)),
        usage=usage_to_canonical(body.get("usage")),
    )


def called_stop(stop: c.Stop, called: bool) -> c.Stop:
    """An answer that calls a tool stopped to use it, whatever the engine says: vLLM finishes a
    forced (named) tool choice with `stop`, and an Anthropic client must see `tool_use`."""
    if called and stop.reason == c.StopReason.END_TURN:
        return c.Stop(c.StopReason.TOOL_USE)
    return stop


# ---- canonical -> client response ------------------------------------------------------------


def usage_out(usage: c.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }
    if usage.cached_input_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    return out


def response_from_canonical(resp: c.ChatResponse, model: str) -> dict[str, Any]:
    text = "".join(b.text for b in resp.blocks if isinstance(b, c.Text))
    calls = [
        {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": b.arguments}}
        for b in resp.blocks
        if isinstance(b, c.ToolCall)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": chat_id(resp.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _STOP_TO_FINISH[resp.stop.reason],
            }
        ],
        "usage": usage_out(resp.usage),
    }


def chat_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("chatcmpl-") else f"chatcmpl-{upstream_id}"
