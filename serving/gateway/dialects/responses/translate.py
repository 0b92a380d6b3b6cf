"""Pure conversions between the OpenAI Responses API and the canonical model.

Client side: `thread_items` (the conversation as Responses input items), `request_to_canonical`
and `response_from_canonical`. Upstream side (a target that speaks only Responses):
`request_from_canonical` and `response_to_canonical`.

Items travel as plain dicts, as the client sent them: they are stored, expanded into the next
turn's thread and forwarded to Responses upstreams with their unknown fields intact; the wire
models in protocol.py validate them on the way in.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from pydantic import TypeAdapter, ValidationError

from serving.gateway import canonical as c
from serving.gateway.dialects.responses import protocol as p
from serving.gateway.errors import InvalidRequest, UpstreamError

_ITEMS: TypeAdapter[list[p.InputItem]] = TypeAdapter(list[p.InputItem])
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

# Request fields a Response object echoes back, with the API's defaults.
_ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "temperature": None,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "truncation": "disabled",
    "user": None,
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


# ---- client request -> thread and canonical --------------------------------------------------


def input_items(raw: Any) -> list[dict[str, Any]]:
    """A request's `input` as a list of items: a string is one user message."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        return []
    return [dict(item) for item in raw if isinstance(item, dict)]


def item_id(item: dict[str, Any], response_id: str, index: int) -> str:
    """An item's own id, or a stable one derived from where it is stored (input items that the
    client sent without ids still get the same id on every listing)."""
    given = item.get("id")
    if isinstance(given, str) and given:
        return given
    digest = hashlib.sha256(f"{response_id}:{index}".encode()).hexdigest()[:32]
    prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
    return f"{prefix.get(str(item.get('type') or 'message'), 'item')}_{digest}"


def listed_item(item: dict[str, Any], response_id: str, index: int) -> dict[str, Any]:
    """An input item as `GET /v1/responses/{id}/input_items` lists it: typed, with an id, and
    message content always as a list of parts."""
    out = {**item, "id": item_id(item, response_id, index)}
    out.setdefault("type", "message")
    if out["type"] == "message":
        content = out.get("content")
        if isinstance(content, str):
            kind = "output_text" if out.get("role") == "assistant" else "input_text"
            out["content"] = [{"type": kind, "text": content}]
        out.setdefault("status", "completed")
    return out


def input_items_page(record: Any, order: str, after: str | None, limit: int) -> dict[str, Any]:
    """One page of `GET /v1/responses/{id}/input_items` over a stored record's thread."""
    items = [listed_item(item, record.id, i) for i, item in enumerate(record.input_items)]
    if order == "desc":
        items.reverse()
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"no input item {after!r} in this response", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def parse_items(items: list[dict[str, Any]], where: str = "input") -> list[p.InputItem]:
    try:
        return _ITEMS.validate_python(items)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise InvalidRequest(f"{where}.{loc}: {err['msg']}", param=f"{where}.{loc}") from exc


def _content_blocks(content: str | list[p.Content], where: str) -> list[c.Block]:
    if isinstance(content, str):
        return [c.Text(content)] if content else []
    out: list[c.Block] = []
    for i, part in enumerate(content):
        if isinstance(part, p.InputText):
            out.append(c.Text(part.text))
        elif isinstance(part, p.Refusal):
            out.append(c.Text(part.refusal))
        elif isinstance(part, p.InputImage) and part.image_url:
            out.append(_image(part.image_url))
        else:
            kind = part.type
            raise InvalidRequest(
                f"content part type {kind!r} is not supported by this model's upstream",
                param=f"{where}.content[{i}]",
            )
    return out


def _image(url: str) -> c.Image:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return c.Image(media_type=header[5:].split(";", 1)[0] or None, data=data)
    return c.Image(url=url)


def _append(messages: list[c.Message], role: str, blocks: list[c.Block]) -> None:
    """Consecutive turns of one role merge, as Anthropic and Gemini require."""
    if not blocks:
        return
    if messages and messages[-1].role == role:
        messages[-1].content.extend(blocks)
    else:
        messages.append(c.Message("user" if role == "user" else "assistant", blocks))


def _output_text(output: str | list[p.Content]) -> list[c.Text | c.Image]:
    if isinstance(output, str):
        return [c.Text(output)]
    blocks = _content_blocks(output, "output")
    return [b for b in blocks if isinstance(b, c.Text | c.Image)]


def items_to_messages(
    items: list[p.InputItem],
) -> tuple[list[c.Text], list[c.Message]]:
    """Input items → (system texts, canonical messages)."""
    system: list[c.Text] = []
    messages: list[c.Message] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if isinstance(item, p.MessageItem):
            blocks = _content_blocks(item.content, where)
            if item.role in ("system", "developer"):
                system.extend(b for b in blocks if isinstance(b, c.Text))
            else:
                _append(messages, item.role, blocks)
        elif isinstance(item, p.FunctionCallItem):
            _append(messages, "assistant", [c.ToolCall(item.call_id, item.name, item.arguments)])
        elif isinstance(item, p.FunctionCallOutputItem):
            _append(messages, "user", [c.ToolResult(item.call_id, _output_text(item.output))])
        elif isinstance(item, p.ReasoningItem):
            continue  # an earlier turn's reasoning means nothing to another model family
        else:
            raise InvalidRequest(
                f"input item type {item.type!r} is not supported by this model's upstream"
                " (it has no Chat Completions, Messages or Gemini form)",
                param=f"{where}.type",
            )
    return system, messages


def _tools(tools: list[p.Tool] | None) -> list[c.Tool]:
    out: list[c.Tool] = []
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, p.FunctionTool):
            raise InvalidRequest(
                f"tools[{i}]: built-in tool type {tool.type!r} is run by OpenAI's servers and"
                " this model's upstream does not have it; only function tools are translated",
                param=f"tools[{i}].type",
            )
        out.append(c.Tool(tool.name, tool.description, tool.parameters or _EMPTY_SCHEMA))
    return out


def _tool_choice(req: p.ResponsesRequest) -> c.ToolChoice | None:
    parallel = req.parallel_tool_calls is not False
    choice = req.tool_choice
    if choice is None:
        return None if parallel else c.ToolChoice(parallel=False)
    if isinstance(choice, p.NamedToolChoice):
        if choice.type != "function" or not choice.name:
            raise InvalidRequest(
                f"tool_choice of type {choice.type!r} is not supported by this model's upstream",
                param="tool_choice",
            )
        return c.ToolChoice("tool", choice.name, parallel)
    mode = {"none": "none", "auto": "auto", "required": "any"}[choice]
    return c.ToolChoice(mode, None, parallel)  # type: ignore[arg-type]


def _response_format(text: p.TextConfig | None) -> c.ResponseFormat | None:
    fmt = text.format if text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return c.ResponseFormat("json")
    if fmt.schema_ is None:
        raise InvalidRequest("text.format.schema is required for json_schema", param="text.format")
    return c.ResponseFormat("json_schema", fmt.schema_, fmt.name)


def request_to_canonical(req: p.ResponsesRequest, thread: list[dict[str, Any]]) -> c.ChatRequest:
    """A Responses request whose conversation is `thread` (earlier turns from the gateway's
    store, then this request's input), for a target that does not speak Responses."""
    if req.background:
        raise InvalidRequest("background responses are not supported", param="background")
    system, messages = items_to_messages(parse_items(thread))
    if req.instructions:
        system.insert(0, c.Text(req.instructions))
    extras: dict[str, Any] = {}
    if req.reasoning is not None and req.reasoning.effort:
        extras["reasoning_effort"] = req.reasoning.effort
    return c.ChatRequest(
        model=req.model,
        messages=messages,
        system=system,
        tools=_tools(req.tools),
        tool_choice=_tool_choice(req),
        sampling=c.Sampling(
            max_tokens=req.max_output_tokens, temperature=req.temperature, top_p=req.top_p
        ),
        response_format=_response_format(req.text),
        stream=bool(req.stream),
        user=req.user,
        extras=extras,
    )


# ---- canonical -> client response ------------------------------------------------------------


def request_echo(parsed: dict[str, Any], model: str, store: bool) -> dict[str, Any]:
    """The request fields a Response object repeats, with the API's defaults for the rest."""
    echo = {
        k: parsed.get(k, v) if parsed.get(k) is not None else v for k, v in _ECHO_DEFAULTS.items()
    }
    echo["model"] = model
    echo["store"] = store
    return echo


def usage_out(usage: c.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part] if text or status == "completed" else [],
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id or new_id("call"),
        "name": name,
        "arguments": arguments,
    }


def output_items(blocks: list[c.Text | c.ToolCall]) -> list[dict[str, Any]]:
    """Consecutive text blocks make one message item; each tool call is a function_call item."""
    out: list[dict[str, Any]] = []
    text: list[str] = []
    for block in blocks:
        if isinstance(block, c.Text):
            text.append(block.text)
            continue
        if text:
            out.append(message_item(new_id("msg"), "".join(text)))
            text = []
        out.append(function_call_item(new_id("fc"), block.id, block.name, block.arguments))
    if text and "".join(text):
        out.append(message_item(new_id("msg"), "".join(text)))
    return out


def status_of(stop: c.Stop) -> tuple[str, dict[str, Any] | None]:
    """A Response's `status` and `incomplete_details` for a canonical stop."""
    if stop.reason == c.StopReason.MAX_TOKENS:
        return "incomplete", {"reason": "max_output_tokens"}
    if stop.reason == c.StopReason.CONTENT_FILTER:
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response_object(
    response_id: str,
    echo: dict[str, Any],
    *,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: c.Usage | None,
    incomplete: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "output": output,
        "usage": usage_out(usage) if usage is not None else None,
        **echo,
    }


def response_from_canonical(
    resp: c.ChatResponse, response_id: str, echo: dict[str, Any]
) -> dict[str, Any]:
    status, incomplete = status_of(resp.stop)
    return response_object(
        response_id,
        echo,
        created_at=int(time.time()),
        status=status,
        output=output_items(resp.blocks),
        usage=resp.usage,
        incomplete=incomplete,
    )


# ---- canonical -> upstream request (a Responses-only target) ---------------------------------


def _content_out(blocks: list[c.Text | c.Image], role: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, c.Text):
            kind = "output_text" if role == "assistant" else "input_text"
            out.append({"type": kind, "text": block.text})
        elif isinstance(block, c.Image):
            url = block.url or f"data:{block.media_type or 'image/png'};base64,{block.data}"
            out.append({"type": "input_image", "image_url": url})
    return out


def messages_to_items(messages: list[c.Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for msg in messages:
        plain = [b for b in msg.content if isinstance(b, c.Text | c.Image)]
        for block in msg.content:
            if isinstance(block, c.ToolResult):
                text = "".join(b.text for b in block.content if isinstance(b, c.Text))
                items.append(
                    {"type": "function_call_output", "call_id": block.call_id, "output": text}
                )
        if plain:
            items.append(
                {"type": "message", "role": msg.role, "content": _content_out(plain, msg.role)}
            )
        for block in msg.content:
            if isinstance(block, c.ToolCall):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": block.id,
                        "name": block.name,
                        "arguments": block.arguments,
                    }
                )
    return items


def request_from_canonical(req: c.ChatRequest, model: str) -> dict[str, Any]:
    """The body to send to a Responses upstream; nothing is stored there (the gateway keeps
    the conversation)."""
    body: dict[str, Any] = {
        "model": model,
        "input": messages_to_items(req.messages),
        "store": False,
    }
    if req.system:
        body["instructions"] = "\n\n".join(t.text for t in req.system)
    s = req.sampling
    for key, value in (
        ("max_output_tokens", s.max_tokens),
        ("temperature", s.temperature),
        ("top_p", s.top_p),
        ("user", req.user),
    ):
        if value is not None:
            body[key] = value
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "parameters": t.parameters,
            }
            for t in req.tools
        ]
    choice = req.tool_choice
    if choice is not None and (req.tools or choice.mode == "none"):
        if choice.mode == "tool":
            body["tool_choice"] = {"type": "function", "name": choice.name}
        else:
            body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.mode]
        if req.tools and not choice.parallel:
            body["parallel_tool_calls"] = False
    fmt = req.response_format
    if fmt is not None and fmt.kind == "json":
        body["text"] = {"format": {"type": "json_object"}}
    elif fmt is not None and fmt.kind == "json_schema":
        schema = {"type": "json_schema", "name": fmt.name or "response", "schema": fmt.schema or {}}
        body["text"] = {"format": schema}
    effort = req.extras.get("reasoning_effort")
    if isinstance(effort, str):
        body["reasoning"] = {"effort": effort}
    if req.stream:
        body["stream"] = True
    return body


# ---- upstream response -> canonical ----------------------------------------------------------


def usage_to_canonical(usage: dict[str, Any] | None) -> c.Usage:
    if not usage:
        return c.Usage()
    details = usage.get("input_tokens_details") or {}
    return c.Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def stop_to_canonical(body: dict[str, Any], has_calls: bool) -> c.Stop:
    reason = (body.get("incomplete_details") or {}).get("reason")
    if body.get("status") == "incomplete" and reason == "content_filter":
        return c.Stop(c.StopReason.CONTENT_FILTER)
    if body.get("status") == "incomplete":
        return c.Stop(c.StopReason.MAX_TOKENS)
    return c.Stop(c.StopReason.TOOL_USE if has_calls else c.StopReason.END_TURN)


def response_to_canonical(body: dict[str, Any]) -> c.ChatResponse:
    if body.get("object") != "response" or not isinstance(body.get("output"), list):
        raise UpstreamError("upstream response is not a Responses API response")
    if body.get("status") == "failed":
        message = (body.get("error") or {}).get("message") or "the upstream response failed"
        raise UpstreamError(f"upstream response failed: {message}")
    blocks: list[c.Text | c.ToolCall] = []
    for item in body["output"]:
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    blocks.append(c.Text(part.get("text", "")))
                elif part.get("type") == "refusal":
                    blocks.append(c.Text(part.get("refusal", "")))
        elif item.get("type") == "function_call":
            blocks.append(
                c.ToolCall(
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or "{}"),
                )
            )
    has_calls = any(isinstance(b, c.ToolCall) for b in blocks)
    return c.ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        blocks=blocks,
        stop=stop_to_canonical(body, has_calls),
        usage=usage_to_canonical(body.get("usage")),
    )


# ---- shape checks of a Responses upstream's answers ------------------------------------------


def answer_ok(body: dict[str, Any]) -> bool:
    """A whole Responses answer: a Response object with its output list (a garbled or failed
    one fails over instead of reaching the client)."""
    return (
        body.get("object") == "response"
        and isinstance(body.get("output"), list)
        and body.get("status") != "failed"
    )
