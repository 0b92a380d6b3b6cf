"""ClientWatch: the client leaving cancels the work, however early; nothing else is taken for it."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from serving.gateway.disconnect import ClientWatch


class Client:
    """An ASGI receive whose disconnect comes when `leave` is called; counts the calls."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.calls = 0

    async def receive(self) -> Message:
        self.calls += 1
        await self.left.wait()
        return {"type": "http.disconnect"}


async def test_a_client_that_leaves_at_once_cancels_the_work_after_the_grace() -> None:
    client = Client()
    client.left.set()
    watch = ClientWatch(client.receive, after=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.CancelledError):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert watch.caught()
            raise
        finally:
            watch.stop()
    assert 0.015 <= loop.time() - started < 2
    assert watch.gone
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # taken back: the task carries on


async def test_a_client_that_leaves_mid_work_cancels_it() -> None:
    client = Client()
    watch = ClientWatch(client.receive, after=0.01)
    asyncio.get_running_loop().call_later(0.1, client.left.set)
    caught = False
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        caught = watch.caught()
    finally:
        watch.stop()
    assert caught


async def test_work_done_within_the_grace_never_listens() -> None:
    client = Client()
    watch = ClientWatch(client.receive, after=0.05)
    await asyncio.sleep(0.001)
    watch.stop()
    client.left.set()
    await asyncio.sleep(0.1)
    assert client.calls == 0 and not watch.gone


async def test_a_disconnect_after_stop_cancels_nothing() -> None:
    client = Client()
    watch = ClientWatch(client.receive, after=0.0)
    await asyncio.sleep(0.02)  # the watcher is listening now
    assert client.calls == 1
    watch.stop()
    client.left.set()
    await asyncio.sleep(0.05)  # would raise CancelledError here if the watch still cut
    assert not watch.gone


async def test_another_cancellation_is_not_taken_for_the_client() -> None:
    client = Client()
    watch = ClientWatch(client.receive, after=0.0)
    work = asyncio.current_task()
    assert work is not None
    asyncio.get_running_loop().call_later(0.02, work.cancel)
    with pytest.raises(asyncio.CancelledError):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            assert not watch.caught()
            raise
        finally:
            watch.stop()
    work.uncancel()
