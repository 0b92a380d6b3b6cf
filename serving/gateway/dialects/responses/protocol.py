"""OpenAI Responses API wire models (requests; responses are built as plain dicts).

Unknown fields are allowed and kept: a Responses-speaking upstream receives them untouched.
Input items are a union discriminated on `type`; a bare `{role, content}` message (the "easy"
form SDKs send) has no `type` and is read as a message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class ResponsesModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputText(ResponsesModel):
    type: Literal["input_text", "output_text"]
    text: str


class InputImage(ResponsesModel):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class Refusal(ResponsesModel):
    type: Literal["refusal"]
    refusal: str


class OtherContent(ResponsesModel):
    """input_file, input_audio, ...: accepted on the wire, refused when they must be translated."""

    type: Literal["input_file", "input_audio"]


Content = Annotated[InputText | InputImage | Refusal | OtherContent, Field(discriminator="type")]


class MessageItem(ResponsesModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Content]
    id: str | None = None
    status: str | None = None


class FunctionCallItem(ResponsesModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(ResponsesModel):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Content]
    id: str | None = None
    status: str | None = None


class ReasoningItem(ResponsesModel):
    """Reasoning from an earlier turn: kept for Responses upstreams, dropped in translation."""

    type: Literal["reasoning"]
    id: str | None = None


class ItemReference(ResponsesModel):
    """An item of a stored response, by id (resolved from the gateway's store)."""

    type: Literal["item_reference"]
    id: str


class OtherItem(ResponsesModel):
    """Built-in tool calls and their outputs (web search, computer, shell, MCP, ...): accepted
    for Responses upstreams, refused when they must be translated."""

    type: str


def _item_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind is None:
        return "message"  # the easy input message form has no type
    return kind if kind in _KNOWN_ITEMS else "other"


_KNOWN_ITEMS = (
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
)

InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_kind),
]


class FunctionTool(ResponsesModel):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class BuiltinTool(ResponsesModel):
    """web_search, file_search, computer_use_preview, code_interpreter, mcp, ...: run by
    OpenAI's servers, so only a Responses upstream that has them can serve them."""

    type: str


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "function" if kind == "function" else "builtin"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[BuiltinTool, Tag("builtin")],
    Discriminator(_tool_kind),
]


class NamedToolChoice(ResponsesModel):
    type: str  # "function" names one of the function tools; others name built-in tools
    name: str | None = None


class TextFormat(ResponsesModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(ResponsesModel):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(ResponsesModel):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(ResponsesModel):
    model: str
    input: str | list[InputItem] = Field(default_factory=list)
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None  # the API's default is true
    stream: bool | None = False
    background: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    conversation: Any = None
    prompt: Any = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    truncation: Literal["auto", "disabled"] | None = None
