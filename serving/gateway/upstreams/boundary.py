"""The one place an upstream's failures are mapped into the gateway's hierarchy.

As an HTTP client maps its transport's exceptions with one guard around everything below it, each
upstream call runs inside `map_upstream_errors`: whatever goes wrong underneath (the transport,
bytes that are not UTF-8, JSON of the wrong shape, a bug in a translator, any other exception)
leaves as a `GatewayError`, so the breaker hears of it and the chain moves on exactly as for a
5xx. Text that came from below (an exception's message, an upstream's error event) passes
through `redaction.redact` on its way into a client-visible message. Streams get the same
treatment after their first event: a canonical stream ends with a `Failure` (its `rest` is
`base.bounded_events`), `mapped_bytes` raises a `GatewayError` into the byte relay.

Cancellation (a client that went away) is a `BaseException` and passes through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import NoReturn

from serving.gateway.errors import (
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from serving.gateway.redaction import redact
from serving.gateway.upstreams.http1 import ConnectFailed, ReadTimeout, TransportError

log = logging.getLogger("serving.gateway.upstreams")


# No connection could be made (refused, unreachable, DNS, TLS handshake, or the connect
# timeout): the endpoint is down, not slow.
CONNECT_ERRORS = (ConnectFailed,)


def map_transport_error(exc: TransportError, upstream: str) -> GatewayError:
    """The HTTP client's transport failures → the gateway hierarchy."""
    if isinstance(exc, CONNECT_ERRORS):
        return UpstreamUnavailable(
            f"cannot connect to upstream {upstream!r}: {redact(str(exc))}", upstream=upstream
        )
    if isinstance(exc, ReadTimeout):
        return UpstreamTimeout(f"upstream {upstream!r} timed out", upstream=upstream)
    return UpstreamError(
        f"upstream {upstream!r} failed: {type(exc).__name__}: {redact(str(exc))}",
        reason="transport",
        upstream=upstream,
    )


def map_exception(exc: Exception, upstream: str) -> GatewayError:
    """Any exception raised below an upstream call, as the hierarchy sees it."""
    if isinstance(exc, GatewayError):
        if exc.upstream is None:
            exc.upstream = upstream
        return exc
    if isinstance(exc, TransportError):
        return map_transport_error(exc, upstream)
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"upstream {upstream!r} timed out", upstream=upstream)
    if isinstance(exc, UnicodeError):
        return UpstreamError(
            f"upstream {upstream!r} sent bytes that are not valid UTF-8",
            reason="decode",
            upstream=upstream,
        )
    if isinstance(exc, ValueError):  # json.JSONDecodeError included
        return UpstreamError(
            f"upstream {upstream!r} sent data that does not decode: {redact(str(exc))}",
            reason="decode",
            upstream=upstream,
        )
    if isinstance(exc, KeyError | IndexError | TypeError | AttributeError):
        return UpstreamError(
            f"upstream {upstream!r} answered in an unexpected shape"
            f" ({type(exc).__name__}: {redact(str(exc))})",
            reason="shape",
            upstream=upstream,
        )
    if isinstance(exc, OSError):
        return UpstreamUnavailable(
            f"upstream {upstream!r} failed: {redact(str(exc))}", upstream=upstream
        )
    # Not an answer the upstream could have caused by itself: keep the traceback for the bug
    # report, and still let the chain move on.
    log.warning(
        "upstream %s: unexpected %s in its client", upstream, type(exc).__name__, exc_info=exc
    )
    return UpstreamError(
        f"upstream {upstream!r} failed inside its client ({type(exc).__name__})",
        reason="internal",
        upstream=upstream,
    )


@contextmanager
def map_upstream_errors(upstream: str) -> Iterator[None]:
    """Run an upstream call; every exception leaves it as a `GatewayError`."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure is mapped
        raise_mapped(exc, upstream)


def raise_mapped(exc: Exception, upstream: str) -> NoReturn:
    """Raise what `exc` is at the boundary: itself when it already is a `GatewayError`."""
    mapped = map_exception(exc, upstream)
    if mapped is exc:
        raise exc
    raise mapped from exc


async def mapped_bytes(chunks: AsyncIterator[bytes], upstream: str) -> AsyncIterator[bytes]:
    """A relayed byte stream whose failures, of any kind, raise as a `GatewayError`."""
    try:
        with map_upstream_errors(upstream):
            async for chunk in chunks:
                yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
