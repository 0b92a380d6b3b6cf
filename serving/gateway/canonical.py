"""The canonical chat model every dialect converts to and from.

Small and dialect-free on purpose: N dialects need 2N converters through it, not N². Plain
slotted dataclasses, because these objects are built on every request's hot path and need no
validation of their own (the wire models in each dialect's protocol.py validate input).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image given inline (`data`, base64) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None


@dataclass(slots=True)
class ToolCall:
    """A model's call of a tool; `arguments` is a JSON object serialised as a string."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False
    name: str | None = None  # Gemini needs the function name; other dialects ignore it


Block = Text | Image | ToolCall | ToolResult


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: list[Block]


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    parameters: dict[str, Any]


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "any", "none", "tool"] = "auto"
    name: str | None = None
    parallel: bool = True


@dataclass(slots=True)
class Sampling:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


@dataclass(slots=True)
class ResponseFormat:
    kind: Literal["text", "json", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: list[Text] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    sampling: Sampling = field(default_factory=Sampling)
    response_format: ResponseFormat | None = None
    stream: bool = False
    user: str | None = None
    # Dialect fields with no canonical meaning that an upstream of the same family may use.
    extras: dict[str, Any] = field(default_factory=dict)


class StopReason(StrEnum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    CONTENT_FILTER = "content_filter"


@dataclass(slots=True)
class Stop:
    reason: StopReason
    sequence: str | None = None  # the stop string that matched, when known


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    blocks: list[Text | ToolCall]
    stop: Stop
    usage: Usage


# ---- stream events ---------------------------------------------------------------------------


@dataclass(slots=True)
class Start:
    id: str
    model: str
    input_tokens: int = 0


@dataclass(slots=True)
class BlockStart:
    """A content block opens; `index` is dense and increasing across the message."""

    index: int
    kind: Literal["text", "tool_call"]
    id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    fragment: str


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class Finish:
    stop: Stop
    usage: Usage


@dataclass(slots=True)
class Failure:
    """The stream broke after it started; the encoder ends it with the dialect's error event."""

    error: Exception


StreamEvent = Start | BlockStart | TextDelta | ToolArgsDelta | BlockStop | Finish | Failure
