"""Pure conversions between Anthropic Messages and the canonical model.

Client side: `request_to_canonical`, `response_from_canonical`.
Upstream side: `request_from_canonical`, `response_to_canonical`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic import protocol as p
from serving.gateway.errors import InvalidRequest, UpstreamError

_STOP_OUT = {
    c.StopReason.END_TURN: "end_turn",
    c.StopReason.MAX_TOKENS: "max_tokens",
    c.StopReason.STOP_SEQUENCE: "stop_sequence",
    c.StopReason.TOOL_USE: "tool_use",
    c.StopReason.CONTENT_FILTER: "refusal",
}
_STOP_IN = {
    "end_turn": c.StopReason.END_TURN,
    "max_tokens": c.StopReason.MAX_TOKENS,
    "stop_sequence": c.StopReason.STOP_SEQUENCE,
    "tool_use": c.StopReason.TOOL_USE,
    "refusal": c.StopReason.CONTENT_FILTER,
    "pause_turn": c.StopReason.END_TURN,
    "model_context_window_exceeded": c.StopReason.MAX_TOKENS,
}


def stop_reason_out(stop: c.Stop) -> str:
    return _STOP_OUT[stop.reason]


def stop_to_canonical(reason: str | None, sequence: str | None) -> c.Stop:
    return c.Stop(_STOP_IN.get(reason or "end_turn", c.StopReason.END_TURN), sequence)


# ---- client request -> canonical -------------------------------------------------------------


def _image(block: p.ImageBlock) -> c.Image:
    if isinstance(block.source, p.Base64Source):
        return c.Image(media_type=block.source.media_type, data=block.source.data)
    return c.Image(url=block.source.url)


def _result_content(block: p.ToolResultBlock) -> list[c.Text | c.Image]:
    if isinstance(block.content, str):
        return [c.Text(block.content)]
    return [c.Text(b.text) if isinstance(b, p.TextBlock) else _image(b) for b in block.content]


def _blocks(msg: p.MessageParam, where: str) -> list[c.Block]:
    if isinstance(msg.content, str):
        return [c.Text(msg.content)]
    out: list[c.Block] = []
    for i, block in enumerate(msg.content):
        if isinstance(block, p.TextBlock):
            out.append(c.Text(block.text))
        elif isinstance(block, p.ImageBlock):
            out.append(_image(block))
        elif isinstance(block, p.ToolUseBlock):
            args = json.dumps(block.input, separators=(",", ":"), ensure_ascii=False)
            out.append(c.ToolCall(block.id, block.name, args))
        elif isinstance(block, p.ToolResultBlock):
            out.append(
                c.ToolResult(block.tool_use_id, _result_content(block), bool(block.is_error))
            )
        elif isinstance(block, p.DocumentBlock):
            raise InvalidRequest(
                f"content block type {block.type!r} is not supported by this model's upstream",
                param=f"{where}.content[{i}]",
            )
        # thinking blocks from earlier turns carry no meaning for other model families
    return out


def _tool_choice(choice: p.ToolChoiceParam | None) -> c.ToolChoice | None:
    if choice is None:
        return None
    if choice.type == "tool" and not choice.name:
        raise InvalidRequest(
            "tool_choice.name is required when type is 'tool'", param="tool_choice"
        )
    return c.ToolChoice(choice.type, choice.name, not choice.disable_parallel_tool_use)


def system_texts(system: str | list[p.TextBlock] | None) -> list[c.Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [c.Text(system)] if system else []
    return [c.Text(b.text) for b in system]


def request_to_canonical(req: p.MessagesRequest) -> c.ChatRequest:
    messages: list[c.Message] = []
    for i, msg in enumerate(req.messages):
        blocks = _blocks(msg, f"messages.{i}")
        if messages and messages[-1].role == msg.role:
            messages[-1].content.extend(blocks)  # consecutive same-role turns merge
        else:
            messages.append(c.Message(msg.role, blocks))
    return c.ChatRequest(
        model=req.model,
        messages=messages,
        system=system_texts(req.system),
        tools=_tools(req.tools),
        tool_choice=_tool_choice(req.tool_choice),
        sampling=c.Sampling(
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            top_k=req.top_k,
            stop=list(req.stop_sequences or []),
        ),
        response_format=_response_format(req.output_config, req.output_format),
        stream=bool(req.stream),
        user=req.metadata.user_id if req.metadata else None,
    )


def _response_format(
    config: p.OutputConfig | None, legacy: p.JSONSchemaOutput | None
) -> c.ResponseFormat | None:
    """`output_config.format`, or the beta's top-level `output_format` (the same shape)."""
    fmt = config.format if config is not None and config.format is not None else legacy
    if fmt is None:
        return None
    return c.ResponseFormat("json_schema", fmt.schema_)


def _tools(tools: list[p.ToolParam] | None) -> list[c.Tool]:
    out: list[c.Tool] = []
    for i, tool in enumerate(tools or []):
        if tool.type not in (None, "custom"):
            raise InvalidRequest(
                f"tools.{i}: server tool {tool.type!r} is run by Anthropic's servers and is not"
                " supported by this model's upstream; only custom tools (with input_schema) are"
                " translated",
                param=f"tools.{i}.type",
            )
        if tool.input_schema is None:
            raise InvalidRequest(
                f"tools.{i}.input_schema: Field required", param=f"tools.{i}.input_schema"
            )
        out.append(c.Tool(tool.name, tool.description, tool.input_schema))
    return out


def dropped_fields(
    req: p.MessagesRequest, beta_header: str | None, *, forwarded: bool
) -> list[str]:
    """What the client asked for that did not reach the model, for `x-serving-dropped`: the
    `anthropic-beta` header is sent to no upstream (not even an Anthropic one), and `thinking`
    has no canonical form, so only a forwarded body keeps it."""
    dropped = ["anthropic-beta"] if beta_header else []
    thinking = req.thinking is not None and req.thinking.get("type") not in (None, "disabled")
    if thinking and not forwarded:
        dropped.append("thinking")
    return dropped


def count_request_to_canonical(req: p.CountTokensRequest) -> c.ChatRequest:
    """A count_tokens body is a Messages body without the generation fields."""
    body = req.model_dump(by_alias=True, exclude_none=True)
    canonical = request_to_canonical(p.MessagesRequest.model_validate({**body, "max_tokens": 1}))
    canonical.sampling.max_tokens = None  # validation needs one; counting has none
    return canonical


# ---- canonical -> upstream request -----------------------------------------------------------


def _image_out(image: c.Image) -> dict[str, Any]:
    if image.data is not None:
        source = {
            "type": "base64",
            "media_type": image.media_type or "image/png",
            "data": image.data,
        }
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": image.url}}


def _block_out(block: c.Block) -> dict[str, Any]:
    if isinstance(block, c.Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, c.Image):
        return _image_out(block)
    if isinstance(block, c.ToolCall):
        return {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": parse_args(block.arguments),
        }
    content = [_block_out(b) for b in block.content]
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": block.call_id, "content": content}
    if block.is_error:
        out["is_error"] = True
    return out


def _ordered(msg: c.Message) -> list[dict[str, Any]]:
    """Tool results go first in a user turn, as the Messages API requires."""
    results = [b for b in msg.content if isinstance(b, c.ToolResult)]
    rest = [b for b in msg.content if not isinstance(b, c.ToolResult)]
    return [_block_out(b) for b in results + rest]


def request_from_canonical(req: c.ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": req.sampling.max_tokens or 4096,
        "messages": [{"role": m.role, "content": _ordered(m)} for m in req.messages],
    }
    if req.system:
        body["system"] = [{"type": "text", "text": t.text} for t in req.system]
    s = req.sampling
    for key, value in (("temperature", s.temperature), ("top_p", s.top_p), ("top_k", s.top_k)):
        if value is not None:
            body[key] = min(value, 1.0) if key == "temperature" else value
    if s.stop:
        body["stop_sequences"] = s.stop
    if req.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters,
            }
            for t in req.tools
        ]
    if req.tool_choice is not None and (req.tools or req.tool_choice.mode == "none"):
        choice: dict[str, Any] = {"type": req.tool_choice.mode}
        if req.tool_choice.name:
            choice["name"] = req.tool_choice.name
        if not req.tool_choice.parallel and req.tool_choice.mode != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if req.user:
        body["metadata"] = {"user_id": req.user}
    fmt = _output_format(req.response_format)
    if fmt is not None:
        body["output_config"] = {"format": fmt}
    if req.stream:
        body["stream"] = True
    return body


def _output_format(fmt: c.ResponseFormat | None) -> dict[str, Any] | None:
    """Structured output; plain JSON mode has no Messages form, so it becomes "any object"."""
    if fmt is None or fmt.kind == "text":
        return None
    return {"type": "json_schema", "schema": fmt.schema or {"type": "object"}}


def count_request_from_canonical(req: c.ChatRequest, model: str) -> dict[str, Any]:
    """The body of `POST /v1/messages/count_tokens`: the message fields that cost input tokens."""
    full = request_from_canonical(req, model)
    keep = ("model", "messages", "system", "tools", "tool_choice")
    return {k: full[k] for k in keep if k in full}


def parse_args(arguments: str) -> dict[str, Any]:
    """Tool arguments as an object; a model's malformed JSON is kept under `_raw`."""
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


# ---- upstream response -> canonical ----------------------------------------------------------


def usage_to_canonical(usage: dict[str, Any] | None) -> c.Usage:
    if not usage:
        return c.Usage()
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    return c.Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + cached + created,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=cached,
    )


def response_to_canonical(body: dict[str, Any]) -> c.ChatResponse:
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        raise UpstreamError("upstream response is not an Anthropic message")
    blocks: list[c.Text | c.ToolCall] = []
    for block in body["content"]:
        if block.get("type") == "text":
            blocks.append(c.Text(block.get("text", "")))
        elif block.get("type") == "tool_use":
            args = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
            blocks.append(c.ToolCall(block.get("id", ""), block.get("name", ""), args))
    return c.ChatResponse(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        blocks=blocks,
        stop=stop_to_canonical(body.get("stop_reason"), body.get("stop_sequence")),
        usage=usage_to_canonical(body.get("usage")),
    )


# ---- canonical -> client response ------------------------------------------------------------


def message_id(upstream_id: str) -> str:
    if upstream_id.startswith("msg_"):
        return upstream_id
    return "msg_" + (upstream_id.removeprefix("chatcmpl-") or uuid.uuid4().hex)


def usage_out(usage: c.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }


def response_from_canonical(resp: c.ChatResponse, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in resp.blocks:
        if isinstance(block, c.Text):
            if block.text:
                content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_use_id(block.id),
                    "name": block.name,
                    "input": parse_args(block.arguments),
                }
            )
    return {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_out(resp.stop),
        "stop_sequence": resp.stop.sequence
        if resp.stop.reason == c.StopReason.STOP_SEQUENCE
        else None,
        "usage": usage_out(resp.usage),
    }


def tool_use_id(call_id: str) -> str:
    return call_id or f"toolu_{uuid.uuid4().hex[:24]}"
