"""Gemini `generateContent` wire models (requests; responses are built as plain dicts).

The API is camelCase on the wire; proto3 JSON also accepts snake_case, so both spellings
validate. Unknown fields are allowed and kept: a same-dialect upstream receives them untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class GeminiModel(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class Blob(GeminiModel):
    mime_type: str
    data: str


class FileData(GeminiModel):
    mime_type: str | None = None
    file_uri: str


class FunctionCall(GeminiModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class FunctionResponse(GeminiModel):
    name: str
    response: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Part(GeminiModel):
    """One of `text`, `inlineData`, `fileData`, `functionCall`, `functionResponse` (or others
    such as `executableCode`, kept as extra fields and refused when they must be translated)."""

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    thought: bool | None = None


class Content(GeminiModel):
    role: str | None = None  # "model" is the assistant; "user", "function" or none the user
    parts: list[Part] = Field(default_factory=list)


class FunctionDeclaration(GeminiModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # Gemini's OpenAPI-subset Schema
    parameters_json_schema: dict[str, Any] | None = None  # plain JSON Schema


class Tool(GeminiModel):
    """Function declarations, or a built-in tool (googleSearch, codeExecution, ...) as extras."""

    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(GeminiModel):
    mode: Literal["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"] | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(GeminiModel):
    function_calling_config: FunctionCallingConfig | None = None


class GenerationConfig(GeminiModel):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=1)
    stop_sequences: list[str] | None = None
    candidate_count: int | None = Field(default=None, ge=1)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: dict[str, Any] | None = None
    response_logprobs: bool | None = None


class GenerateContentRequest(GeminiModel):
    contents: list[Content] = Field(min_length=1)
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[dict[str, Any]] | None = None
    cached_content: str | None = None
    model: str | None = None  # set inside countTokens' generateContentRequest


class CountTokensRequest(GeminiModel):
    """Either bare `contents`, or a whole `generateContentRequest` (system and tools count too)."""

    contents: list[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None


# ---- responses -------------------------------------------------------------------------------


class ErrorStatus(BaseModel):
    code: int
    message: str
    status: str  # the google.rpc.Code name, e.g. "INVALID_ARGUMENT"


class ErrorResponse(BaseModel):
    error: ErrorStatus
