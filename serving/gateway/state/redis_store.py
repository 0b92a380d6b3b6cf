"""The Redis state backend: records shared by every gateway replica.

Each record is one key with the retention as its expiry (`SET ... EX`), so Redis itself forgets
old conversations; size the server's `maxmemory` for the traffic. The URL may carry a password:
it comes from an environment variable (`state.redis_url_env`) and is never logged.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving.gateway.state.store import StateStore, StateUnavailable


class RedisStore(StateStore):
    backend = "redis"

    def __init__(
        self, url: str, prefix: str, retention_seconds: float, max_record_bytes: int
    ) -> None:
        super().__init__(retention_seconds, max_record_bytes)
        self._client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix

    def _key(self, response_id: str) -> str:
        return self._prefix + response_id

    def _failed(self, exc: RedisError) -> StateUnavailable:
        return StateUnavailable(f"conversation state store (redis) failed: {type(exc).__name__}")

    async def _put(self, key: str, data: bytes) -> None:
        try:
            await self._client.set(self._key(key), data, ex=max(1, int(self.retention_seconds)))
        except RedisError as exc:
            raise self._failed(exc) from exc

    async def _get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(self._key(key))
        except RedisError as exc:
            raise self._failed(exc) from exc
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    async def delete(self, response_id: str) -> bool:
        try:
            return bool(await self._client.delete(self._key(response_id)))
        except RedisError as exc:
            raise self._failed(exc) from exc

    async def aclose(self) -> None:
        await self._client.aclose()
