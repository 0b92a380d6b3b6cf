"""One error hierarchy for the gateway, rendered once per dialect.

    GatewayError                      status  retryable
     ├── InvalidRequest                 400     no
     │    └── ContextWindowExceeded     400     no   (a longer-context target may still serve)
     ├── AuthenticationFailed           401     no
     ├── PermissionDenied               403     no
     ├── NotFound                       404     no
     ├── RequestTooLarge                413     no
     ├── RateLimited                    429     yes  (carries retry_after seconds)
     ├── UpstreamError                  502     yes  (an upstream answered badly)
     │    ├── Overloaded                529     yes
     │    └── UpstreamTimeout           504     yes
     ├── UpstreamUnavailable            503     yes  (could not connect)
     ├── NoHealthyTarget                503     yes  (every target skipped or failed)
     └── PrivacyBlocked                 503     no   (private request, no local target)

Upstream clients map transport and HTTP failures into this tree; policy decides fallback from
the class and `retryable`, never from message text. Every error carries its message.
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        upstream: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after
        self.upstream = upstream

    def __str__(self) -> str:
        return self.message


class InvalidRequest(GatewayError):
    status = 400


class ContextWindowExceeded(InvalidRequest):
    pass


class AuthenticationFailed(GatewayError):
    status = 401


class PermissionDenied(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class RequestTooLarge(GatewayError):
    status = 413


class RateLimited(GatewayError):
    status = 429
    retryable = True


class UpstreamError(GatewayError):
    status = 502
    retryable = True


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
