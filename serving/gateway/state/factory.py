"""The configured conversation store, built once per gateway."""

from __future__ import annotations

from pathlib import Path

from serving.engine.settings import EngineSettings
from serving.gateway.settings import State
from serving.gateway.state.store import StateStore

# Under `state.key_prefix`, beside the other shared state (per-key counters) in the same Redis.
REDIS_NAMESPACE = "responses:"


def build_store(config: State) -> StateStore:
    if config.backend == "redis":
        from serving.gateway.state.redis_store import RedisStore

        url = config.read_redis_url()
        if not url:
            raise ValueError(
                "state.backend is redis but no URL is set (state.redis_url, or the environment"
                f" variable named by state.redis_url_env: {config.redis_url_env!r})"
            )
        prefix = config.key_prefix + REDIS_NAMESPACE
        return RedisStore(url, prefix, config.retention_seconds, config.max_record_bytes)
    from serving.gateway.state.sqlite_store import SQLiteStore

    path = (
        Path(config.sqlite_path).expanduser()
        if config.sqlite_path
        else EngineSettings.from_env().cache_dir / "state" / "responses.sqlite3"
    )
    return SQLiteStore(path, config.retention_seconds, config.max_record_bytes)
