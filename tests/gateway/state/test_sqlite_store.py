"""The SQLite state backend on its own: round trip, retention, deletion, the size limit."""

from __future__ import annotations

from pathlib import Path

from serving.gateway.state.sqlite_store import SQLiteStore
from serving.gateway.state.store import StoredResponse


def record(rid: str, text: str = "hi") -> StoredResponse:
    response = {"id": rid, "object": "response", "output": [{"type": "message", "text": text}]}
    return StoredResponse(rid, response, [{"role": "user", "content": "q"}])


async def test_round_trip_and_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "a" / "s.sqlite3", 60, 1 << 20)
    try:
        assert await store.put(record("resp_1", "ünïcode"))
        got = await store.get("resp_1")
        assert got is not None and got.response["output"][0]["text"] == "ünïcode"
        assert got.thread() == [{"role": "user", "content": "q"}, *got.response["output"]]
        assert await store.get("resp_2") is None
    finally:
        await store.aclose()


async def test_expired_records_are_gone(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteStore(tmp_path / "s.sqlite3", 10, 1 << 20, clock=lambda: now[0])
    try:
        await store.put(record("resp_old"))
        now[0] += 9
        assert await store.get("resp_old") is not None
        now[0] += 2
        assert await store.get("resp_old") is None
    finally:
        await store.aclose()


async def test_delete_and_size_limit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3", 60, 200)
    try:
        assert not await store.put(record("resp_big", "x" * 500))
        assert await store.get("resp_big") is None
        assert await store.put(record("resp_small"))
        assert await store.delete("resp_small")
        assert not await store.delete("resp_small")
    finally:
        await store.aclose()


async def test_a_gateway_that_never_stores_creates_no_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "never" / "s.sqlite3", 60, 200)
    await store.aclose()
    assert not (tmp_path / "never").exists()
