"""The dispatcher's retry and fallback decisions with fake upstream clients: no network, the
sleeps recorded instead of slept, the clock driven by hand."""

from __future__ import annotations

from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.dispatch import Dispatcher
from serving.gateway.errors import (
    GatewayError,
    InvalidRequest,
    NoHealthyTarget,
    Overloaded,
    RateLimited,
    UpstreamUnavailable,
)
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.settings import Settings, parse_settings
from serving.gateway.upstreams.base import (
    EventStream,
    RawCall,
    RawResponse,
    RawStream,
    UpstreamClient,
)
from serving.gateway.upstreams.transport import Transport


class Scripted(UpstreamClient):
    """Answers from a list: an exception is raised, anything else returned."""

    dialect = "openai"

    def __init__(self, settings: Settings, name: str, script: list[Any]) -> None:
        super().__init__(settings.upstream(name), Transport(connect=1, read=None))
        self.script = script
        self.calls = 0

    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        self.calls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return RawResponse(200, b"{}", "application/json", c.Usage(1, 1))

    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        raise AssertionError("same dialect: forward only")

    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream:
        raise AssertionError("same dialect: forward only")

    async def ready(self) -> bool:
        return True


SETTINGS = parse_settings(
    {
        "policy": {
            "retry": {
                "attempts": 2,
                "backoff_base": 1,
                "backoff_max": 8,
                "jitter": 0,
                "retry_after_cap": 10,
            },
            "circuit": {"min_requests": 3, "failure_rate": 1.0, "cooldown": 30},
        },
        "upstreams": [
            {"name": "a", "base_url": "http://a/v1", "locality": "hosted"},
            {"name": "b", "base_url": "http://b/v1"},
        ],
        "routes": [
            {
                "model": "r",
                "targets": [{"upstream": "a", "model": "x"}, {"upstream": "b", "model": "y"}],
            }
        ],
    }
)
CALL = RawCall("/chat/completions", b'{"model":"r"}', {"model": "r"}, False)


class Harness:
    def __init__(self, a: list[Any], b: list[Any]) -> None:
        self.sleeps: list[float] = []
        self.now = 0.0
        self.a = Scripted(SETTINGS, "a", a)
        self.b = Scripted(SETTINGS, "b", b)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.dispatcher = Dispatcher(
            SETTINGS,
            {"a": self.a, "b": self.b},
            Metrics(),
            clock=lambda: self.now,
            sleep=sleep,
            rand=lambda: 0.0,
        )

    async def send(self) -> Any:
        return await self.dispatcher.dispatch("openai", "r", CALL, c.ChatRequest("r", []), Caller())


OK = "ok"


async def test_backoff_doubles_then_moves_on() -> None:
    h = Harness([Overloaded("529")], [OK])
    outcome = await h.send()
    assert h.sleeps == [1, 2] and h.a.calls == 3
    assert outcome.target.upstream == "b" and outcome.fallbacks == ["a/x:overloaded"]


async def test_retry_after_is_honoured_and_over_the_cap_moves_on() -> None:
    h = Harness([RateLimited("429", retry_after=3.5), OK], [OK])
    assert (await h.send()).target.upstream == "a"
    assert h.sleeps == [3.5]
    h = Harness([RateLimited("429", retry_after=60)], [OK])
    assert (await h.send()).target.upstream == "b"
    assert h.sleeps == [] and h.a.calls == 1


async def test_client_errors_are_raised_at_once() -> None:
    h = Harness([InvalidRequest("bad")], [OK])
    with pytest.raises(InvalidRequest):
        await h.send()
    assert h.a.calls == 1 and h.b.calls == 0 and h.sleeps == []


async def test_an_open_circuit_is_skipped_until_its_cooldown_ends() -> None:
    h = Harness([Overloaded("529")], [OK])
    await h.send()  # 3 failed attempts: the circuit opens (min 3, 100 %)
    calls = h.a.calls
    outcome = await h.send()
    assert h.a.calls == calls and outcome.fallbacks == ["a/x:circuit_open"]
    h.now += 30
    h.a.script = [OK]
    outcome = await h.send()  # half-open probe succeeds: closed again
    assert outcome.target.upstream == "a" and h.a.calls == calls + 1
    assert h.dispatcher.circuits["a/x"].state.name == "CLOSED"


async def test_a_refused_connect_moves_on_at_once_when_a_next_target_exists() -> None:
    """Dialling a dead address again only adds the backoff; the last target is retried."""
    h = Harness([UpstreamUnavailable("refused")], [UpstreamUnavailable("refused"), OK])
    outcome = await h.send()
    assert h.a.calls == 1 and h.b.calls == 2 and h.sleeps == [1]
    assert outcome.target.upstream == "b" and outcome.fallbacks == ["a/x:connect"]


async def test_every_failure_is_listed_when_nothing_serves() -> None:
    h = Harness([UpstreamUnavailable("refused")], [Overloaded("529")])
    with pytest.raises(NoHealthyTarget) as info:
        await h.send()
    assert "a/x:connect" in str(info.value) and "b/y:overloaded" in str(info.value)
    assert isinstance(info.value, GatewayError) and info.value.status == 503
