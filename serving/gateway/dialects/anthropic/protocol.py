"""Anthropic Messages wire models: requests, and the error envelope."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AnthropicModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextBlock(AnthropicModel):
    type: Literal["text"]
    text: str


class Base64Source(AnthropicModel):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(AnthropicModel):
    type: Literal["url"]
    url: str


class ImageBlock(AnthropicModel):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(AnthropicModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(AnthropicModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: bool | None = None


class ThinkingBlock(AnthropicModel):
    """Thinking from an earlier turn: kept for Anthropic upstreams, dropped in translation."""

    type: Literal["thinking", "redacted_thinking"]


class DocumentBlock(AnthropicModel):
    type: Literal["document", "search_result", "server_tool_use", "web_search_tool_result"]


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | DocumentBlock,
    Field(discriminator="type"),
]


class MessageParam(AnthropicModel):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolParam(AnthropicModel):
    """A custom tool (`input_schema` required), or a server tool (`type` such as
    `web_search_20250305`, run by Anthropic's servers): forwarded to Anthropic upstreams, refused
    by name when the request must be translated."""

    type: str | None = None  # absent or "custom" for client tools
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoiceParam(AnthropicModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(AnthropicModel):
    user_id: str | None = None


class JSONSchemaOutput(AnthropicModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(AnthropicModel):
    """Structured outputs: the reply must match `format.schema`."""

    format: JSONSchemaOutput | None = None


class MessagesRequest(AnthropicModel):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    output_format: JSONSchemaOutput | None = None  # the structured-outputs beta's field
    thinking: dict[str, Any] | None = None
    stream: bool | None = False


class CountTokensRequest(AnthropicModel):
    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None


# ---- responses -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str
