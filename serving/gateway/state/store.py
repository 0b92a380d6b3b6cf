"""Conversation state the gateway keeps for the Responses API (`store`, `previous_response_id`).

A stored record is one answered turn: the Response object as the client saw it and the whole
input thread it was answered from (earlier turns expanded, then the turn's own input). The next
turn's thread is that input plus the Response's output, so a conversation continues on any
target, whichever served the turn before. Records are opaque JSON to the backends, kept for
`state.retention_seconds`; contents are never logged.

Backends: SQLite (one file, the default; one gateway replica) and Redis (shared by replicas).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from typing import Any

from serving.gateway.errors import UpstreamUnavailable


@dataclass(slots=True)
class StoredResponse:
    id: str
    response: dict[str, Any]  # the Response object, as returned to the client
    input_items: list[dict[str, Any]]  # the whole thread this turn was answered from
    # The turn was private (stored under `state.store_private`): so is every later turn of the
    # conversation, since its thread carries this one's content to whichever target serves it.
    private: bool = False
    # The client key that created it (its bounded policy id; None on an open gateway): only
    # that key may read, continue or delete it.
    owner: str | None = None

    def visible_to(self, owner: str | None) -> bool:
        return self.owner == owner

    def thread(self) -> list[dict[str, Any]]:
        """The conversation so far, as the next turn's leading input items."""
        return [*self.input_items, *(self.response.get("output") or [])]

    def encode(self) -> bytes:
        body = {
            "response": self.response,
            "input": self.input_items,
            "private": self.private,
            "owner": self.owner,
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, key: str, data: bytes) -> StoredResponse:
        body = json.loads(data)
        private = bool(body.get("private", False))
        return cls(key, body["response"], body["input"], private, body.get("owner"))


class StateUnavailable(UpstreamUnavailable):
    """The state backend cannot be reached; the message names the backend, never the content."""


class StateStore(abc.ABC):
    """Where records live. `put` answers False when a record exceeds the size limit."""

    backend: str = ""

    def __init__(self, retention_seconds: float, max_record_bytes: int) -> None:
        self.retention_seconds = retention_seconds
        self.max_record_bytes = max_record_bytes

    async def put(self, record: StoredResponse) -> bool:
        data = record.encode()
        if len(data) > self.max_record_bytes:
            return False
        await self._put(record.id, data)
        return True

    async def get(self, response_id: str) -> StoredResponse | None:
        data = await self._get(response_id)
        return None if data is None else StoredResponse.decode(response_id, data)

    @abc.abstractmethod
    async def _put(self, key: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete(self, response_id: str) -> bool: ...

    async def aclose(self) -> None:
        return None
