"""Conversation state across targets: a three-turn conversation by `previous_response_id` whose
first turn is answered by a hosted Responses upstream and the next two by a local
Chat-Completions upstream after the hosted one fails. Every request the upstreams receive
carries the whole thread. Once with SQLite, once with a real Redis server; and two gateway
replicas sharing one Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.fake_upstream import Reply, chat_completion, chat_stream, openai_error
from tests.support.redis_server import redis_server
from tests.support.responses_gateway import hosted_response, responses_gateway


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.sqlite3")}
        return
    with redis_server(tmp_path) as url:
        yield {"backend": "redis", "redis_url": url, "key_prefix": "test:"}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_three_turns_fail_over_from_hosted_to_local(state: dict[str, Any]) -> None:
    with responses_gateway(state) as gw:
        c = gw.client()
        gw.hosted.script(Reply.json(hosted_response("One.", "resp_turn1")))
        first = c.responses.create(model="failover", input="Turn 1", instructions="Be brief.")
        assert (first.id, first.output_text) == ("resp_turn1", "One.")
        assert gw.hosted.requests[-1].json() == {
            "model": "hosted-model",
            "input": "Turn 1",
            "instructions": "Be brief.",
        }
        assert gw.local.requests == []

        gw.hosted.script(openai_error(500, "hosted is down", "server_error"))
        gw.local.script(Reply.json(chat_completion("Two.")), Reply.sse(chat_stream(("Thr", "ee."))))
        raw = c.responses.with_raw_response.create(
            model="failover", input="Turn 2", previous_response_id=first.id
        )
        assert raw.headers["x-serving-target"] == "local/local-model"
        assert "hosted/hosted-model" in raw.headers["x-serving-fallback"]
        second = raw.parse()
        assert second.output_text == "Two."
        hosted_try = gw.hosted.requests[-1].json()  # the failed attempt had the thread too
        assert "previous_response_id" not in hosted_try
        assert [i.get("role") for i in hosted_try["input"]] == ["user", "assistant", "user"]
        assert hosted_try["input"][1]["content"][0]["text"] == "One."
        assert gw.local.requests[-1].json()["messages"] == [
            _user("Turn 1"),
            {"role": "assistant", "content": "One."},
            _user("Turn 2"),
        ]

        with c.responses.stream(
            model="failover", input="Turn 3", previous_response_id=second.id
        ) as stream:
            third = stream.get_final_response()
        assert third.output_text == "Three."
        assert gw.local.requests[-1].json()["messages"] == [
            _user("Turn 1"),
            {"role": "assistant", "content": "One."},
            _user("Turn 2"),
            {"role": "assistant", "content": "Two."},
            _user("Turn 3"),
        ]
        listed = list(c.responses.input_items.list(third.id, order="asc"))
        assert [getattr(i, "role", None) for i in listed] == ["user", "assistant"] * 2 + ["user"]


def test_replicas_share_conversations_through_redis(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        state = {"backend": "redis", "redis_url": url}
        with responses_gateway(state) as a, responses_gateway(state) as b:
            a.local.script(Reply.json(chat_completion("From A.")))
            b.local.script(Reply.json(chat_completion("From B.")))
            ca, cb = a.client(), b.client()
            first = ca.responses.create(model="chat", input="hello")
            second = cb.responses.create(model="chat", input="again", previous_response_id=first.id)
            assert second.output_text == "From B."
            assert b.local.requests[-1].json()["messages"][1] == {
                "role": "assistant",
                "content": "From A.",
            }
            assert cb.responses.retrieve(first.id).output_text == "From A."


def test_state_backend_down_is_a_503_when_reading(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    state = {"backend": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    with responses_gateway(state) as gw:
        c = gw.client()
        with pytest.raises(openai.InternalServerError) as info:
            c.responses.create(model="chat", input="hi", previous_response_id="resp_x")
        assert info.value.status_code == 503
        assert "state store (redis)" in info.value.message
        gw.local.script(Reply.json(chat_completion("still answered")))
        raw = c.responses.with_raw_response.create(model="chat", input="hi")
        assert raw.parse().output_text == "still answered"
        assert raw.headers["x-serving-store"] == "failed; redis unavailable"


def test_records_over_the_size_limit_are_not_stored(tmp_path: Path) -> None:
    state = {"sqlite_path": str(tmp_path / "s.sqlite3"), "max_record_bytes": 64}
    with responses_gateway(state) as gw:
        gw.local.script(Reply.json(chat_completion("a long enough answer " * 5)))
        c = gw.client()
        raw = c.responses.with_raw_response.create(model="chat", input="hi")
        assert "max_record_bytes" in raw.headers["x-serving-store"]
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(raw.parse().id)


def test_a_private_conversation_stays_private_on_later_turns(tmp_path: Path) -> None:
    """With `store_private`, a turn marked private is stored, and a later turn that continues it
    without the mark still never reaches a hosted target: its thread carries turn 1."""
    state = {"sqlite_path": str(tmp_path / "s.sqlite3"), "store_private": True}
    with responses_gateway(state) as gw:
        c = gw.client()
        gw.local.script(Reply.json(chat_completion("Noted.")), Reply.json(chat_completion("Yes.")))
        raw = c.responses.with_raw_response.create(
            model="failover", input="my secret", extra_headers={"x-serving-private": "true"}
        )
        assert raw.headers["x-serving-target"] == "local/local-model"
        first = raw.parse()
        assert first.to_dict()["store"] is True
        raw = c.responses.with_raw_response.create(
            model="failover", input="go on", previous_response_id=first.id
        )
        assert raw.headers["x-serving-private"] == "true"
        assert raw.headers["x-serving-target"] == "local/local-model"
        assert "hosted/hosted-model:private" in raw.headers["x-serving-fallback"]
        assert gw.hosted.requests == []


def test_stored_responses_belong_to_the_key_that_made_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = "sk-alice-0123456789abcdef", "sk-bob-0123456789abcdefgh"
    monkeypatch.setenv("RESP_KEY_ALICE", alice)
    monkeypatch.setenv("RESP_KEY_BOB", bob)
    server = {
        "keys": [
            {"name": "alice", "key_env": "RESP_KEY_ALICE"},
            {"name": "bob", "key_env": "RESP_KEY_BOB"},
        ]
    }
    state = {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.sqlite3")}
    with responses_gateway(state, server) as gw:
        gw.local.script(Reply.json(chat_completion("Alice's answer.")))
        url = gw.url + "/v1"
        with (
            openai.OpenAI(base_url=url, api_key=alice, max_retries=0) as a,
            openai.OpenAI(base_url=url, api_key=bob, max_retries=0) as b,
        ):
            made = a.responses.create(model="chat", input="a secret plan")
            assert a.responses.retrieve(made.id).output_text == "Alice's answer."
            # Another key sees no such response, whichever way it asks.
            with pytest.raises(openai.NotFoundError):
                b.responses.retrieve(made.id)
            with pytest.raises(openai.NotFoundError):
                b.responses.input_items.list(made.id)
            with pytest.raises(openai.NotFoundError):
                b.responses.create(model="chat", input="go on", previous_response_id=made.id)
            with pytest.raises(openai.NotFoundError):
                b.responses.delete(made.id)
            assert len(gw.local.requests) == 1  # bob's turn never reached an upstream
            a.responses.delete(made.id)
            with pytest.raises(openai.NotFoundError):
                a.responses.retrieve(made.id)
