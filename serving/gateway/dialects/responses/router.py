"""OpenAI Responses routes: create (whole or streamed), retrieve, delete, cancel, input items.

Create runs through the shared endpoint runner like every other generation route: the parse
expands `previous_response_id` from the gateway's store (conversation.py), a Responses-speaking
upstream (`responses_api: true`, or dialect `responses`) gets the body untouched with the
thread in `input`, any other target the canonical request. Errors use the OpenAI envelope.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import endpoint
from serving.gateway.deps import CallerDep, validate
from serving.gateway.dialects.openai.router import render_error
from serving.gateway.dialects.responses import conversation as conv
from serving.gateway.dialects.responses import protocol as p
from serving.gateway.dialects.responses import stream as s
from serving.gateway.dialects.responses import translate as t
from serving.gateway.endpoint import DialectAdapter, Exchange
from serving.gateway.errors import InvalidRequest, NotFound
from serving.gateway.policy.caller import Caller
from serving.gateway.relay import StreamGrammar, json_response
from serving.gateway.runtime import Gateway
from serving.gateway.state.store import StoredResponse

router = APIRouter()

# A relayed Responses stream ends with a terminal event, not a marker: the conversation's tap
# checks it (an empty marker turns the relay's own check off).
DIALECT = DialectAdapter("responses", StreamGrammar(s.relay_error_frame), render_error)


def _parse(gateway: Gateway, owner: str | None) -> endpoint.Parse[Exchange]:
    async def parse(body: bytes, parsed: dict[str, Any]) -> Exchange:
        req = validate(p.ResponsesRequest, parsed)
        turn = await conv.open_turn(gateway.conversations, req, body, parsed, owner)
        keeper = conv.Conversation(
            gateway.conversations,
            gateway.settings.state,
            turn,
            lambda name: gateway.upstreams[name].dialect,
        )
        return Exchange(
            req.model,
            turn.call,
            endpoint.translated(lambda: t.request_to_canonical(req, turn.thread)),
            render=keeper.render,
            encoder=keeper.encoder,
            keeper=keeper,
            private="conversation" if turn.private else None,
        )

    return parse


def _owner(caller: Caller) -> str | None:
    """Stored responses belong to the key that made them (none on an open gateway)."""
    return caller.key.id if caller.key is not None else None


@router.post("/v1/responses")
async def create_response(request: Request, auth: CallerDep) -> Response:
    gateway, caller = auth
    return await endpoint.generate(request, DIALECT, _parse(gateway, _owner(caller)))


async def _stored(gateway: Gateway, response_id: str, caller: Caller) -> StoredResponse:
    record = await gateway.conversations.get(response_id)
    if record is None or not record.visible_to(_owner(caller)):
        raise NotFound(f"Response with id {response_id!r} not found.", param="response_id")
    return record


@router.get("/v1/responses/{response_id}")
async def retrieve_response(response_id: str, request: Request, auth: CallerDep) -> Response:
    gateway, caller = auth
    if request.query_params.get("stream") in ("true", "1"):
        raise InvalidRequest(
            "replaying a stored response as a stream is not supported", param="stream"
        )
    return json_response((await _stored(gateway, response_id, caller)).response)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, auth: CallerDep) -> Response:
    gateway, caller = auth
    await _stored(gateway, response_id, caller)
    if not await gateway.conversations.delete(response_id):
        raise NotFound(f"Response with id {response_id!r} not found.", param="response_id")
    return json_response({"id": response_id, "object": "response", "deleted": True})


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, auth: CallerDep) -> Response:
    gateway, caller = auth
    await _stored(gateway, response_id, caller)
    raise InvalidRequest(
        "Only background responses can be cancelled; this gateway answers every response in the"
        " foreground (background mode is not supported).",
        param="response_id",
    )


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(response_id: str, request: Request, auth: CallerDep) -> Response:
    gateway, caller = auth
    record = await _stored(gateway, response_id, caller)
    q = request.query_params
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be 'asc' or 'desc'", param="order")
    try:
        limit = int(q.get("limit", "20"))
    except ValueError as exc:
        raise InvalidRequest("limit must be an integer", param="limit") from exc
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    return json_response(t.input_items_page(record, order, q.get("after"), limit))
