"""Log records: the request id on every line, text or JSON (one object per line).

The request id lives in a context variable set by the lifecycle middleware for the duration of
each request: log records are written deep inside libraries and policy code that never see the
request, and a context variable is how Python's logging correlates them (it is per task, copied
into child tasks such as a streaming body, and holds no state between requests).

JSON fields: `ts` (ISO 8601, UTC), `level`, `logger`, `message`, `request_id` (when a request is
running), `exc` (a traceback, when there is one), and for access lines (logger
`serving.gateway.access`) `method`, `path`, `dialect`, `route`, `target`, `fallbacks`,
`status`, `stream`, `latency_ms`, `input_tokens`, `output_tokens`, `error` (a class name).
Request and response content and keys are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, Literal

request_id_var: ContextVar[str | None] = ContextVar("serving_request_id", default=None)

LogFormat = Literal["text", "json"]
_IN_MESSAGE = frozenset({"method", "path", "status"})  # an access line's message has them


class RequestIdFilter(logging.Filter):
    """Stamps each record with the running request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _Seconds:
    """A record's time to the second, formatted once per second: strftime and the time
    conversion were a fifth of an access line's cost (scripts/bench/micro_lifecycle.py)."""

    __slots__ = ("_convert", "_fmt", "_second", "_text")

    def __init__(self, fmt: str, convert: Any) -> None:
        self._fmt, self._convert = fmt, convert
        self._second, self._text = -1, ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self._fmt, self._convert(second))
        return self._text


class JSONFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": f"{self._seconds(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid is not None:
            out["request_id"] = rid
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, the request id last."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._seconds = _Seconds(self.default_time_format, time.localtime)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return f"{self._seconds(record.created)},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            parts = [line]
            for k, v in fields.items():
                if v is None or k in _IN_MESSAGE:
                    continue
                if isinstance(v, list):
                    if not v:
                        continue
                    v = ",".join(v)
                parts.append(f"{k}={v}")
            line = " ".join(parts)
        rid = getattr(record, "request_id", None)
        if rid is not None:
            line += f" request_id={rid}"
        return line


def configure(level: str, fmt: LogFormat = "text") -> None:
    """The process's logging: one stderr handler, the chosen format, request ids stamped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    # neither format shows thread or process names: skip looking them up for every record
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every upstream request at INFO: noise, and a cost on every request's path
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
