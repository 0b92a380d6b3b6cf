"""A whole (non-streamed) upstream call is bounded by `timeouts.total` from its start: a head
that comes later, or a body that trickles past it a piece at a time (each piece well within the
read timeout), fails as the upstream's timeout on time, and the call's slot is let go."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from serving.gateway import canonical as c
from serving.gateway.errors import UpstreamTimeout
from serving.gateway.settings import Upstream
from serving.gateway.upstreams.openai_compat import OpenAICompatClient
from serving.gateway.upstreams.transport import Transport
from tests.support import fake_upstream as f
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import serve

REQUEST = c.ChatRequest("m", [c.Message("user", [c.Text("Hi")])])
TOTAL = 0.8


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    server = FakeUpstream()
    with serve(server.app) as url:
        yield server, url


def client(url: str) -> OpenAICompatClient:
    config = Upstream.model_validate(
        {
            "name": "up",
            "dialect": "openai",
            "base_url": url + "/v1",
            "locality": "local",
            "timeouts": {"connect": 1, "first_byte": 5, "total": TOTAL, "stream_idle": 5},
        }
    )
    return OpenAICompatClient(config, Transport(connect=1, read=5))


async def gives_up_at_the_total(up: OpenAICompatClient) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="timed out"):
        await up.complete(REQUEST, "m")
    elapsed = time.monotonic() - started
    await up.aclose()
    assert TOTAL - 0.05 <= elapsed < TOTAL + 1.2, f"gave up after {elapsed:.2f}s"


def trickled(pieces: int, every: float) -> Reply:
    """A whole JSON answer sent in `pieces` parts, one every `every` seconds."""
    raw = json.dumps(f.chat_completion("hello")).encode()
    size = -(-len(raw) // pieces)
    parts = [raw[i : i + size] for i in range(0, len(raw), size)]
    return Reply(frames=parts, content_type="application/json", frame_delay=every)


async def test_a_body_that_trickles_past_the_total_times_out_on_time(
    fake: tuple[FakeUpstream, str],
) -> None:
    server, url = fake
    server.script(trickled(10, 0.3))  # 3 s in all; no piece waits more than 0.3 s
    up = client(url)
    await gives_up_at_the_total(up)
    assert up.gate.total == 0  # the slot went back


async def test_a_head_later_than_the_total_times_out_at_the_total(
    fake: tuple[FakeUpstream, str],
) -> None:
    server, url = fake
    server.script(Reply.json(f.chat_completion("late"), delay=3.0))  # first_byte is 5 s
    up = client(url)
    await gives_up_at_the_total(up)
    assert up.gate.total == 0


async def test_a_body_that_trickles_within_the_total_is_read_whole(
    fake: tuple[FakeUpstream, str],
) -> None:
    server, url = fake
    server.script(trickled(4, 0.05))
    up = client(url)
    answer = await up.complete(REQUEST, "m")
    await up.aclose()
    assert answer.blocks == [c.Text("hello")]
    assert up.gate.total == 0
