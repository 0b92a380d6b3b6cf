"""Which upstream failures move a chain on, which go back to the client, and what the client
sees when nothing could serve.

Decided from the error class (errors.py), never from message text. What moves on is declared
per upstream (`fallback_on`, default `policy.fallback_on`); the breaker counts the same
failures except a too-long prompt, which says nothing about the target's health.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.gateway.errors import (
    AuthenticationFailed,
    CapabilityMissing,
    ContextWindowExceeded,
    GatewayError,
    InvalidRequest,
    NoHealthyTarget,
    NotFound,
    Overloaded,
    PermissionDenied,
    PrivacyBlocked,
    RateLimited,
    Saturated,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from serving.gateway.settings import FailureReason


def classify(exc: GatewayError) -> FailureReason:
    """The reason label of an upstream failure."""
    if isinstance(exc, Saturated):
        return "saturated"
    if isinstance(exc, UpstreamUnavailable):
        return "connect"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, Overloaded):
        return "overloaded"
    if isinstance(exc, ContextWindowExceeded):
        return "context_window"
    if isinstance(exc, CapabilityMissing):
        return "capability"
    if isinstance(exc, AuthenticationFailed | PermissionDenied):
        return "upstream_auth"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, UpstreamError) or exc.status >= 500:
        return "server_error"
    return "invalid_request"


def counts_against_circuit(reason: FailureReason) -> bool:
    """A failure that says the target is unwell (a client's bad request or long prompt does not,
    nor the gateway's own admission limit: the upstream was never asked)."""
    return reason not in ("invalid_request", "context_window", "capability", "saturated")


@dataclass(slots=True)
class Failure:
    """A target that did not serve: an attempt that failed, or a skip without an attempt
    (reasons "circuit_open", "unhealthy", "private", "context_window")."""

    target: str
    reason: str
    error: GatewayError | None  # None for a skip

    def describe(self) -> str:
        return f"{self.target}:{self.reason}"


def final_error(route: str, failures: list[Failure], private: bool) -> GatewayError:
    """What the client gets when every target failed or was skipped."""
    summary = "; ".join(f.describe() for f in failures)
    attempted = [f for f in failures if f.error is not None]
    if private:
        return PrivacyBlocked(
            f"this request is private and no local target of {route!r} could serve it"
            f" ({summary or 'the route has no local target'}); no hosted target was contacted"
        )
    if failures and all(f.reason == "dialect" for f in failures):
        return InvalidRequest(
            f"this endpoint is only served by {route!r} targets that speak the client's own API,"
            f" and it has none: {summary}",
            param="model",
        )
    if failures and all(f.reason == "context_window" for f in failures):
        return ContextWindowExceeded(
            f"the prompt does not fit any target of {route!r}: {summary}", param="messages"
        )
    missing = [f.error for f in attempted if isinstance(f.error, CapabilityMissing)]
    if missing and len(missing) == len(attempted):
        return CapabilityMissing(
            f"model {route!r} does not support tool calling on this deployment: {summary}",
            param=missing[0].param,
        )
    saturated = [f.error for f in attempted if isinstance(f.error, Saturated)]
    if saturated and len(saturated) == len(attempted):
        # Every target tried was full: the gateway's overload answer, not a 503, so clients
        # back off for `retry-after` instead of treating the service as down.
        return Saturated(
            f"every target of {route!r} is at the gateway's concurrency limit: {summary}",
            retry_after=min(e.retry_after or 1.0 for e in saturated),
        )
    if len(attempted) == 1 and len(failures) == 1 and attempted[0].error is not None:
        # One target tried: its own error, status and retry-after kept. An upstream's 401/403
        # is passed on as is (the message names the upstream, so it reads as the gateway's key
        # being refused, not the client's); it still moves a longer chain on.
        return attempted[0].error
    return NoHealthyTarget(f"no target of {route!r} could serve the request: {summary}")
