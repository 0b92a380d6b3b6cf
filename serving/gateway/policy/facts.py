"""What policy knows about a request, built once: its decoded user text, its attachments, the
tools it declares and the output budget it asks for.

Built from the validated request's decoded JSON value (what the dialect's wire model was
validated from), not from the body's bytes: every JSON escape (`\\u0040`, surrogate pairs,
`\\/`) is already resolved, so a detector sees the characters an upstream model would see.
It is walked per dialect so that binary payloads (base64 images, audio, PDFs) are counted and
never read as text, while every other string is kept: a same-dialect upstream receives the
body untouched, unknown fields included, so an unknown field is scanned like a known one.

The text is one string of *units* separated by newlines. The text parts of one message (or of
one tool result, or of the system prompt) are joined with nothing between them, so a value
split across adjacent parts is seen whole; every other string (names, ids, tool arguments,
URLs, file names, schema descriptions) is a unit of its own. Tool-call arguments, which are
JSON inside a string, are decoded once more. No detector pattern crosses a newline.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

Kind = Literal["image", "audio", "document"]

# Opaque model-produced blobs (thinking signatures, redacted thinking): not user data, and
# base64 read as text trips the numeric detectors.
_OPAQUE = frozenset({"signature", "thought_signature", "thoughtSignature"})
# Media types whose base64 payload is text a model reads: decoded and scanned.
_TEXT_MEDIA = ("text/", "application/json", "application/xml", "application/x-ndjson")
_TEXT_MEDIA_EXACT = frozenset({"image/svg+xml", "application/javascript", "application/yaml"})


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: Kind
    media_type: str | None
    size: int  # decoded bytes of an inline payload; 0 when given by URL or file id


@dataclass(frozen=True, slots=True)
class RequestFacts:
    text: str  # every user-data string, decoded (see the module docstring for its layout)
    text_bytes: int  # UTF-8 size of `text`
    attachments: tuple[Attachment, ...] = ()
    tools: tuple[str, ...] = ()  # names of the tools (functions, built-ins) the request declares
    max_tokens: int | None = None  # the output budget the request asks for
    messages: int = 0
    problem: str | None = None  # why the text may be incomplete: the request is private then
    # For routing (policy/tasks.py, policy/classify/): the last user turn's text, the output
    # format asked for ("json" or "json_schema") and whether spoken output is asked for.
    prompt: str = ""
    response_format: str | None = None
    audio_output: bool = False

    def count(self, kind: Kind) -> int:
        return sum(1 for a in self.attachments if a.kind == kind)

    def size(self, kind: Kind) -> int:
        return sum(a.size for a in self.attachments if a.kind == kind)

    @staticmethod
    def doubtful(reason: str, body_size: int) -> RequestFacts:
        """Facts that could not be built: the request is private, and its whole body counts
        as text for the context estimate (errs high)."""
        return RequestFacts(text="", text_bytes=body_size, problem=reason)


def is_text_media(media_type: str | None) -> bool:
    mt = (media_type or "").lower()
    return mt.startswith(_TEXT_MEDIA) or mt in _TEXT_MEDIA_EXACT


def kind_of(media_type: str | None, default: Kind = "document") -> Kind:
    mt = (media_type or "").lower()
    if mt.startswith("image/"):
        return "image"
    if mt.startswith("audio/"):
        return "audio"
    return default


def base64_size(data: str) -> int:
    """Decoded size of a base64 string, without decoding it."""
    n = len(data)
    pad = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    return max(0, n * 3 // 4 - pad)


class _Collector:
    def __init__(self) -> None:
        self.units: list[str] = []
        self.run: list[str] = []
        self.attachments: list[Attachment] = []
        self.problem: str | None = None

    # ---- text ----------------------------------------------------------------------------

    def unit(self, text: str) -> None:
        if text:
            self.units.append(text)

    def flush(self) -> None:
        """End the current run of adjacent parts: it becomes one unit."""
        if self.run:
            self.units.append("".join(self.run))
            self.run = []

    def walk(self, value: Any, key: str | None = None) -> None:
        """Every string, number and key of a JSON value, each a unit; `content` lists are
        part lists, `arguments` strings are JSON decoded once more."""
        if isinstance(value, str):
            if key == "arguments":
                self.json_text(value)
            else:
                self.unit(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                if k in _OPAQUE:
                    continue
                self.unit(k)
                if k == "content" and isinstance(v, list):
                    self.parts(v)
                else:
                    self.walk(v, k)
        elif isinstance(value, list):
            for item in value:
                self.walk(item, key)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self.unit(str(value))

    def json_text(self, text: str) -> None:
        """A string holding JSON (tool-call arguments): its decoded values, else the string."""
        try:
            decoded = json.loads(text)
        except ValueError:
            self.unit(text)
            return
        self.walk(decoded)

    def parts(self, parts: Sequence[Any]) -> None:
        """A list of content parts: adjacent text parts form one unit."""
        self.flush()
        for part in parts:
            if isinstance(part, str):
                self.run.append(part)
                continue
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                self.run.append(part["text"])
                rest = {k: v for k, v in part.items() if k not in ("text", "type")}
                if rest:
                    saved, self.run = self.run, []
                    self.walk(rest)
                    self.run = saved
                continue
            self.flush()
            if isinstance(part, dict):
                self.part(part)
            else:
                self.walk(part)
            self.flush()
        self.flush()

    # ---- attachments ---------------------------------------------------------------------

    def part(self, part: dict[str, Any]) -> None:
        """A non-text part of any dialect: media is counted (text media decoded), the rest
        walked as data."""
        rest = dict(part)
        kind = rest.get("type")
        if kind == "redacted_thinking":
            return
        if kind == "image_url" and isinstance(rest.get("image_url"), dict):
            image = dict(rest.pop("image_url"))
            self.url(image.pop("url", None), "image")
            self.walk(image)
        elif kind == "input_image" and isinstance(rest.get("image_url"), str):  # Responses
            self.url(rest.pop("image_url"), "image")
        elif kind == "input_file" and isinstance(rest.get("file_data"), str):  # Responses
            data = rest.pop("file_data")
            if data.startswith("data:"):
                self.url(data, "document")
            else:
                self.inline(data, None, "document")
        elif kind == "input_audio" and isinstance(rest.get("input_audio"), dict):
            audio = dict(rest.pop("input_audio"))
            fmt = audio.pop("format", None)
            self.inline(audio.pop("data", None), f"audio/{fmt}" if fmt else None, "audio")
            self.walk(audio)
        elif kind == "file" and isinstance(rest.get("file"), dict):
            file = dict(rest.pop("file"))
            data = file.pop("file_data", None)
            if isinstance(data, str) and data.startswith("data:"):
                self.url(data, "document")
            elif isinstance(data, str):
                self.inline(data, None, "document")
            self.walk(file)
        elif isinstance(rest.get("source"), dict):  # Anthropic image / document
            self.source(dict(rest.pop("source")), "image" if kind == "image" else "document")
        for key in ("inlineData", "inline_data"):  # Gemini
            if isinstance(rest.get(key), dict):
                blob = dict(rest.pop(key))
                mime = blob.pop("mimeType", blob.pop("mime_type", None))
                self.inline(blob.pop("data", None), mime, kind_of(mime))
                self.walk(blob)
        for key in ("fileData", "file_data"):
            if isinstance(rest.get(key), dict):
                ref = dict(rest[key])
                mime = ref.get("mimeType", ref.get("mime_type"))
                self.attachments.append(Attachment(kind_of(mime), mime, 0))
        rest.pop("type", None)
        self.walk(rest)

    def source(self, source: dict[str, Any], default: Kind) -> None:
        """An Anthropic `source`: base64, plain text, nested content, URL or file id."""
        stype = source.pop("type", None)
        media = source.pop("media_type", None)
        if stype == "base64":
            self.inline(source.pop("data", None), media, kind_of(media, default))
        elif stype == "text":
            self.attachments.append(Attachment("document", media or "text/plain", 0))
            data = source.pop("data", None)
            if isinstance(data, str):
                self.run.append(data)
                self.flush()
        elif stype == "content" and isinstance(source.get("content"), list):
            self.attachments.append(Attachment("document", media, 0))
            self.parts(source.pop("content"))
        elif stype in ("url", "file"):
            self.attachments.append(Attachment(default, media, 0))
        self.walk(source)

    def url(self, url: Any, kind: Kind) -> None:
        if not isinstance(url, str):
            return
        if not url.startswith("data:"):
            self.attachments.append(Attachment(kind, None, 0))
            self.unit(url)  # a URL's path and query can carry personal data
            return
        header, _, payload = url.partition(",")
        params = header[5:].split(";")
        media = params[0] or None
        if "base64" in params[1:]:
            self.inline(payload, media, kind_of(media, kind))
            return
        self.attachments.append(Attachment(kind_of(media, kind), media, len(payload)))
        self.unit(unquote(payload))  # a percent-encoded payload is text

    def inline(self, data: Any, media: Any, kind: Kind) -> None:
        if not isinstance(data, str):
            return
        media = media if isinstance(media, str) else None
        self.attachments.append(Attachment(kind, media, base64_size(data)))
        if not is_text_media(media):
            return  # binary: counted, never read as text
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self.problem = "decode_error"
            return
        self.run.append(text)
        self.flush()


def _messages(col: _Collector, messages: Any) -> int:
    """OpenAI and Anthropic `messages`: each message's content is a part list, the rest data."""
    if not isinstance(messages, list):
        col.walk(messages)
        return 0
    for message in messages:
        if not isinstance(message, dict):
            col.walk(message)
            continue
        content = message.get("content")
        if isinstance(content, str):
            col.run.append(content)
            col.flush()
        elif isinstance(content, list):
            col.parts(content)
        elif content is not None:
            col.walk(content)
        col.walk({k: v for k, v in message.items() if k != "content"})
    return len(messages)


def _contents(col: _Collector, contents: Any) -> int:
    """Gemini `contents` (or a system instruction): each one's parts are a part list."""
    items = contents if isinstance(contents, list) else [contents]
    for content in items:
        if not isinstance(content, dict):
            col.walk(content)
            continue
        parts = content.get("parts")
        if isinstance(parts, list):
            col.parts(parts)
        col.walk({k: v for k, v in content.items() if k != "parts"})
    return len(items)


def _tool_names(tools: Any) -> tuple[str, ...]:
    names: list[str] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        decls = tool.get("functionDeclarations", tool.get("function_declarations"))
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.append(fn["name"])
        elif isinstance(tool.get("name"), str):
            names.append(tool["name"])
        elif isinstance(decls, list):
            names += [d["name"] for d in decls if isinstance(d, dict) and "name" in d]
        else:
            names += [k for k in tool if k != "type"] or [str(tool.get("type"))]
    return tuple(names)


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        if (n := _positive(body.get(key))) is not None:
            return n
    config = body.get("generationConfig", body.get("generation_config"))
    if isinstance(config, dict):
        return _positive(config.get("maxOutputTokens", config.get("max_output_tokens")))
    return None


def _text_of(content: Any) -> str:
    """The text parts of one message's content (a string, or a part list of any dialect)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(p.get("text")) for p in content if isinstance(p, dict))
    return ""


def _prompt(body: Mapping[str, Any]) -> str:
    """The last user turn's text: what a complexity classifier reads."""
    turns = body.get("messages", body.get("contents", body.get("input")))
    if isinstance(turns, str):
        return turns
    for turn in reversed(turns if isinstance(turns, list) else []):
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            return _text_of(turn.get("content", turn.get("parts")))
    return ""


def _response_format(body: Mapping[str, Any]) -> str | None:
    """ "json_schema" or "json" when the request constrains its output's format, in any
    dialect (OpenAI `response_format`, Anthropic `output_config.format`, Gemini
    `generationConfig.responseSchema` / `responseMimeType`)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object", "json"):
        return "json_schema" if fmt["type"] == "json_schema" else "json"
    gen = body.get("generationConfig", body.get("generation_config"))
    if isinstance(gen, dict):
        if any(k in gen for k in ("responseSchema", "response_schema", "responseJsonSchema")):
            return "json_schema"
        if gen.get("responseMimeType", gen.get("response_mime_type")) == "application/json":
            return "json"
    return None


def _audio_output(body: Mapping[str, Any]) -> bool:
    modalities = body.get("modalities")
    if isinstance(modalities, list) and "audio" in modalities:
        return True
    gen = body.get("generationConfig", body.get("generation_config"))
    kinds = gen.get("responseModalities") if isinstance(gen, dict) else None
    return isinstance(kinds, list) and any(str(k).upper() == "AUDIO" for k in kinds)


_MESSAGE_KEYS = {"messages": _messages, "contents": _contents}
_SYSTEM_KEYS = ("system", "systemInstruction", "system_instruction")
_WRAPPERS = ("generateContentRequest", "generate_content_request")


def build_facts(body: Mapping[str, Any]) -> RequestFacts:
    """The facts of one request body of any dialect (chat, messages, generateContent,
    countTokens, completions, embeddings), from its decoded JSON object."""
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if isinstance(inner, dict):  # Gemini countTokens wrapping a whole request
        body = {**{k: v for k, v in body.items() if k not in _WRAPPERS}, **inner}
    col = _Collector()
    messages = 0
    for key, value in body.items():
        if key in _MESSAGE_KEYS:
            messages += _MESSAGE_KEYS[key](col, value)
        elif key in _SYSTEM_KEYS:
            if isinstance(value, str):
                col.run.append(value)
                col.flush()
            elif isinstance(value, list):
                col.parts(value)
            else:
                _contents(col, value)
        else:
            col.walk(value, key)
    col.flush()
    text = "\n".join(col.units)
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return RequestFacts(
        text=text,
        text_bytes=size,
        attachments=tuple(col.attachments),
        tools=_tool_names(body.get("tools")),
        max_tokens=_max_tokens(body),
        messages=messages,
        problem=col.problem,
        prompt=_prompt(body),
        response_format=_response_format(body),
        audio_output=_audio_output(body),
    )
