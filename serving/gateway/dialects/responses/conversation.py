"""A Responses turn against the gateway's own state: the thread expanded from the store before
dispatch, what is sent to a Responses upstream, and the record saved after the answer.

The gateway, not the upstream, owns `previous_response_id`: the previous turn's thread is read
from the store and sent whole to whichever target serves this turn (a Responses upstream gets it
as `input`, with `previous_response_id` removed; any other target the canonical conversation),
so a conversation started on one target continues on another after a failover.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.gateway import canonical as c
from serving.gateway.dialects.responses import protocol as p
from serving.gateway.dialects.responses import translate as t
from serving.gateway.dialects.responses.stream import EventEncoder, StreamTap
from serving.gateway.errors import GatewayError, NotFound, UpstreamError
from serving.gateway.jsoncodec import dumpb
from serving.gateway.relay import StreamGrammar
from serving.gateway.settings import State
from serving.gateway.state.store import StateStore, StoredResponse
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome

log = logging.getLogger("serving.gateway.responses")

STORE_HEADER = "x-serving-store"
DROPPED_HEADER = "x-serving-dropped"  # what the client asked for that did not reach the model


@dataclass(slots=True)
class Turn:
    req: p.ResponsesRequest
    parsed: dict[str, Any]
    thread: list[dict[str, Any]]  # earlier turns, then this request's input
    call: RawCall
    private: bool = False  # continues a private conversation
    served_private: bool = False  # set once served: the plan found this turn private
    owner: str | None = None  # the client key's policy id: the stored record's owner


async def open_turn(
    store: StateStore,
    req: p.ResponsesRequest,
    body: bytes,
    parsed: dict[str, Any],
    owner: str | None = None,
) -> Turn:
    own = t.input_items(parsed.get("input"))
    stream = bool(req.stream)
    if not req.previous_response_id:
        return Turn(req, parsed, own, RawCall("/responses", body, parsed, stream), owner=owner)
    prior = await store.get(req.previous_response_id)
    if prior is None or not prior.visible_to(owner):  # another key's: as if it did not exist
        raise NotFound(
            f"Previous response with id {req.previous_response_id!r} not found (it was never"
            " stored by this gateway, was deleted, or expired).",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    thread = [*prior.thread(), *own]
    sent = {k: v for k, v in parsed.items() if k != "previous_response_id"}
    sent["input"] = thread
    call = RawCall("/responses", dumpb(sent), sent, stream)
    return Turn(req, parsed, thread, call, private=prior.private, owner=owner)


def store_decision(turn: Turn, outcome: Outcome, config: State) -> tuple[bool, str | None]:
    """Whether this turn is stored, and why not when the client asked for it."""
    if turn.req.store is False:
        return False, None
    if outcome.private is not None and not config.store_private:
        return False, "off; private request and state.store_private is false"
    return True, None


async def save(
    store: StateStore, turn: Turn, response: dict[str, Any], headers: dict[str, str]
) -> None:
    """Store an answered turn; a failure to store never fails the answer (it is said in the
    `x-serving-store` header of whole answers, and logged without content)."""
    response_id = response.get("id")
    if not isinstance(response_id, str) or not response_id:
        headers[STORE_HEADER] = "skipped; the upstream's response has no id"
        return
    if turn.req.previous_response_id and not response.get("previous_response_id"):
        response = {**response, "previous_response_id": turn.req.previous_response_id}
    try:
        record = StoredResponse(
            response_id, response, turn.thread, turn.served_private, owner=turn.owner
        )
        stored = await store.put(record)
    except GatewayError as exc:
        log.warning("response %s not stored: %s", response_id, exc)
        headers[STORE_HEADER] = f"failed; {store.backend} unavailable"
        return
    if not stored:
        headers[STORE_HEADER] = "skipped; the record exceeds state.max_record_bytes"
        log.info("response %s not stored: larger than state.max_record_bytes", response_id)


class Watch:
    """Saves a relayed stream's final Response once, before the bytes that carry it leave."""

    def __init__(self, store: StateStore, turn: Turn, keep: bool) -> None:
        self.store, self.turn, self.keep, self.saved = store, turn, keep, False

    async def check(self, tap: StreamTap) -> None:
        if self.keep and not self.saved and tap.final is not None:
            self.saved = True
            await save(self.store, self.turn, tap.final, {})


async def watched(rest: AsyncIterator[bytes], tap: StreamTap, watch: Watch) -> AsyncIterator[bytes]:
    # The relay's own finish check is off (an empty marker): this tap knows the terminal events.
    try:
        async for chunk in rest:
            tap.feed(chunk)
            await watch.check(tap)
            yield chunk
    finally:
        await _close(rest)
    if tap.terminal is None:
        raise UpstreamError("upstream stream ended before response.completed")


async def saving(
    events: AsyncIterator[c.StreamEvent],
    store: StateStore,
    turn: Turn,
    encoder: EventEncoder,
) -> AsyncIterator[c.StreamEvent]:
    """Stores the final Response before the event that sends it reaches the client, so the
    client's next turn can never arrive before its previous one is stored."""
    try:
        async for event in events:
            if isinstance(event, c.Finish):
                await save(store, turn, encoder.finished(event), {})
            yield event
    finally:
        await _close(events)


async def _close(source: object) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


def parsed_answer(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise UpstreamError("upstream sent a Responses answer that is not JSON") from exc
    if not isinstance(parsed, dict):
        raise UpstreamError("upstream sent a Responses answer that is not an object")
    return parsed


class Conversation:
    """The Responses dialect's `Keeper` (endpoint.py) for one turn: decides whether the turn is
    stored once the serving target is known, renders the client's Response with the gateway's
    own id, and stores the answer before its last byte leaves."""

    def __init__(
        self, store: StateStore, config: State, turn: Turn, dialect_of: Callable[[str], str]
    ) -> None:
        self.store, self.config, self.turn = store, config, turn
        self._dialect_of = dialect_of  # upstream name -> the dialect it speaks
        self.keep = False
        self.response_id = t.new_id("resp")
        self.created_at = int(time.time())
        self._encoder: EventEncoder | None = None

    def echo(self) -> dict[str, Any]:
        return t.request_echo(self.turn.parsed, self.turn.req.model, self.keep)

    def render(self, resp: c.ChatResponse) -> dict[str, Any]:
        return t.response_from_canonical(resp, self.response_id, self.echo())

    def encoder(self) -> Callable[[c.StreamEvent], bytes]:
        self._encoder = EventEncoder(self.response_id, self.echo(), self.created_at)
        return self._encoder.encode

    def served(self, outcome: Outcome, headers: dict[str, str]) -> None:
        self.turn.served_private = outcome.private is not None
        self.keep, note = store_decision(self.turn, outcome, self.config)
        if note:
            headers[STORE_HEADER] = note
        translated = not isinstance(outcome.result, RawResponse | RawStream)
        dialect = self._dialect_of(outcome.target.upstream)
        reasons = dialect in ("openai", "responses")  # reasoning_effort / reasoning.effort
        if self.turn.req.reasoning is not None and translated and not reasons:
            headers[DROPPED_HEADER] = "reasoning"  # no form on this target's API

    async def kept_raw(self, result: RawResponse, headers: dict[str, str]) -> None:
        if self.keep and result.status < 300:
            await save(self.store, self.turn, parsed_answer(result.body), headers)

    async def kept(self, body: Any, headers: dict[str, str]) -> None:
        if self.keep:
            await save(self.store, self.turn, body, headers)

    async def relayed(self, stream: RawStream) -> StreamGrammar:
        # The tap knows the terminal events (to store the answer), and numbers an error event
        # after the last one relayed.
        tap = StreamTap()
        tap.feed(stream.first)
        watch = Watch(self.store, self.turn, self.keep)
        await watch.check(tap)
        stream.rest = watched(stream.rest, tap, watch)
        return StreamGrammar(tap.error_frame)

    def encoded(self, stream: EventStream) -> None:
        if self.keep and self._encoder is not None:
            stream.rest = saving(stream.rest, self.store, self.turn, self._encoder)
