"""One error hierarchy for the gateway, rendered once per dialect.

    GatewayError                      status  retryable
     ├── InvalidRequest                 400     no
     │    └── ContextWindowExceeded     400     no   (a longer-context target may still serve)
     ├── AuthenticationFailed           401     no
     ├── PermissionDenied               403     no
     ├── NotFound                       404     no
     ├── RequestTooLarge                413     no
     ├── ClientClosed                   499     no   (the client went away; nothing is sent)
     ├── RateLimited                    429     yes  (carries retry_after seconds)
     ├── Saturated                      429     yes  (the gateway's own limits are full;
     │                                               Anthropic renders it 529 overloaded_error)
     ├── ShuttingDown                   503     yes  (draining after SIGTERM; retry elsewhere)
     ├── UpstreamError                  502     yes  (an upstream answered badly: a 5xx, bytes
     │    │                                          that do not decode, a wrong shape, or any
     │    │                                          exception inside its client; `reason` says)
     │    ├── Overloaded                529     yes
     │    └── UpstreamTimeout           504     yes
     ├── UpstreamUnavailable            503     yes  (could not connect)
     ├── NoHealthyTarget                503     yes  (every target skipped or failed)
     └── PrivacyBlocked                 503     no   (private request, no local target)

Upstream clients map every failure into this tree at one boundary (`upstreams/boundary.py`);
policy decides fallback from the class and `retryable`, never from message text. Every error
carries its message; `code` is an optional machine-readable string a dialect may render
(OpenAI's `error.code`: "model_not_found", "context_length_exceeded", ...).
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    retryable: bool = False
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        upstream: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after
        self.upstream = upstream
        self.code = code if code is not None else self.default_code

    def __str__(self) -> str:
        return self.message


class InvalidRequest(GatewayError):
    status = 400


class ContextWindowExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class CapabilityMissing(InvalidRequest):
    """The target cannot do what the request needs (e.g. tool calling on an engine started
    without a tool parser); a target that can may still serve it."""

    default_code = "unsupported_capability"


class AuthenticationFailed(GatewayError):
    status = 401


class PermissionDenied(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class RequestTooLarge(GatewayError):
    status = 413


class ClientClosed(GatewayError):
    status = 499


class RateLimited(GatewayError):
    status = 429
    retryable = True
    default_code = "rate_limit_exceeded"


class Saturated(GatewayError):
    """The gateway itself is at capacity: an upstream's concurrency limit and wait queue are
    full, or the process's in-flight limit is. Not the upstream's fault (no breaker counts it);
    the client is told to come back after `retry_after`."""

    status = 429
    retryable = True
    default_code = "rate_limit_exceeded"


class ShuttingDown(GatewayError):
    """This gateway process is draining: another replica (or this one, restarted) will serve."""

    status = 503
    retryable = True


class UpstreamError(GatewayError):
    status = 502
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        reason: str = "status",
        status: int | None = None,
        retry_after: float | None = None,
        upstream: str | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after, upstream=upstream)
        # What went wrong, for logs and metrics: "status" (an error answer), "transport",
        # "decode" (bytes that are not UTF-8 or JSON), "shape" (JSON of the wrong form),
        # "stream" (a stream that ended early or carried an error), "internal" (anything else).
        self.reason = reason


class Overloaded(UpstreamError):
    status = 529


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamUnavailable(GatewayError):
    status = 503
    retryable = True


class NoHealthyTarget(GatewayError):
    status = 503
    retryable = True


class PrivacyBlocked(GatewayError):
    status = 503


def from_status(status: int, message: str, *, retry_after: float | None = None) -> GatewayError:
    """Map an upstream HTTP status to the hierarchy (the upstream's message is kept)."""
    cls: type[GatewayError]
    if status == 400 or status == 422:
        cls = InvalidRequest
    elif status == 401:
        cls = AuthenticationFailed
    elif status == 403:
        cls = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 413:
        cls = RequestTooLarge
    elif status == 429:
        cls = RateLimited
    elif status == 529:
        cls = Overloaded
    elif status in (408, 504):
        cls = UpstreamTimeout
    elif status == 409 or status >= 500:
        return UpstreamError(message, status=502 if status == 409 else status)
    else:
        return InvalidRequest(message, status=status)
    return cls(message, retry_after=retry_after)
