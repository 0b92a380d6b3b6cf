"""The endpoints beside chat, through the official SDKs: token counting (Anthropic
`count_tokens`, Gemini `countTokens`) on upstreams of every dialect, and OpenAI's
`/v1/completions` and `/v1/embeddings` relayed to OpenAI-compatible upstreams only."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.support.fake_upstream import Reply
from tests.support.matrix import CLIENT_KEY, DIALECTS, Matrix, matrix_gateway


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    with matrix_gateway() as m:
        yield m


COUNT_REPLIES = {
    "openai": Reply.json({"count": 42, "max_model_len": 2048, "tokens": [7] * 42}),
    "anthropic": Reply.json({"input_tokens": 42}),
    "gemini": Reply.json({"totalTokens": 42}),
}
COUNT_PATHS = {
    "openai": "/tokenize",  # vLLM's, at the server root: the served model's own template
    "anthropic": "/v1/messages/count_tokens",
    "gemini": "/v1beta/models/gemini-upstream-model:countTokens",
}


@pytest.mark.parametrize("upstream", DIALECTS)
def test_anthropic_count_tokens(matrix: Matrix, upstream: str) -> None:
    fake = matrix.fakes[upstream]
    fake.script(COUNT_REPLIES[upstream])
    fake.requests.clear()
    client = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)

    counted = client.messages.count_tokens(
        model=f"via-{upstream}",
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello"}],
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
    )

    assert counted.input_tokens == 42
    [sent] = fake.requests
    assert sent.path == COUNT_PATHS[upstream]
    body = sent.json()
    if upstream == "openai":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["tools"][0]["function"]["name"] == "f"
    elif upstream == "anthropic":
        assert "max_tokens" not in body
        assert body["system"] == [{"type": "text", "text": "Be brief."}]
    else:
        assert body["generateContentRequest"]["tools"][0]["functionDeclarations"][0]["name"] == "f"


@pytest.mark.parametrize("upstream", DIALECTS)
def test_gemini_count_tokens(matrix: Matrix, upstream: str) -> None:
    fake = matrix.fakes[upstream]
    fake.script(COUNT_REPLIES[upstream])
    fake.requests.clear()
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=matrix.url))

    counted = client.models.count_tokens(model=f"via-{upstream}", contents="Hello there")

    assert counted.total_tokens == 42
    [sent] = fake.requests
    assert sent.path == COUNT_PATHS[upstream]


def test_count_tokens_for_an_unknown_model_is_the_clients_404(matrix: Matrix) -> None:
    client = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])
    gclient = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=matrix.url))
    with pytest.raises(genai_errors.ClientError) as caught:
        gclient.models.count_tokens(model="nope", contents="x")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


# ---- OpenAI completions and embeddings --------------------------------------------------------


def _oai(matrix: Matrix) -> openai.OpenAI:
    return openai.OpenAI(base_url=matrix.url + "/v1", api_key=CLIENT_KEY, max_retries=0)


def test_completions_pass_through(matrix: Matrix) -> None:
    fake = matrix.fakes["openai"]
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "openai-upstream-model",
        "choices": [{"index": 0, "text": " world", "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    fake.script(Reply.json(body))
    fake.requests.clear()

    done = _oai(matrix).completions.create(
        model="via-openai", prompt="Hello", max_tokens=1, extra_body={"echo_extra": True}
    )

    assert (done.choices[0].text, done.choices[0].finish_reason) == (" world", "length")
    [sent] = fake.requests
    assert sent.path == "/v1/completions"
    assert sent.json() == {
        "model": "openai-upstream-model",
        "prompt": "Hello",
        "max_tokens": 1,
        "echo_extra": True,
    }


def test_completions_stream_pass_through(matrix: Matrix) -> None:
    fake = matrix.fakes["openai"]
    frames = [
        b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
        b'"choices":[{"index":0,"text":"A","finish_reason":null}]}\n\n',
        b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
        b'"choices":[{"index":0,"text":"B","finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    fake.script(Reply.sse(frames))

    chunks = list(_oai(matrix).completions.create(model="via-openai", prompt="x", stream=True))

    assert "".join(ch.choices[0].text for ch in chunks) == "AB"


def test_embeddings_pass_through(matrix: Matrix) -> None:
    fake = matrix.fakes["openai"]
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
        "model": "openai-upstream-model",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    fake.script(Reply.json(body))
    fake.requests.clear()

    done = _oai(matrix).embeddings.create(model="via-openai", input="hi", encoding_format="float")

    assert done.data[0].embedding == [0.5, -0.25]
    assert done.usage.prompt_tokens == 2
    assert fake.requests[0].path == "/v1/embeddings"


@pytest.mark.parametrize("upstream", ["anthropic", "gemini"])
def test_completions_and_embeddings_need_an_openai_compatible_upstream(
    matrix: Matrix, upstream: str
) -> None:
    client = _oai(matrix)
    matrix.fakes[upstream].requests.clear()
    with pytest.raises(openai.BadRequestError, match="only served by OpenAI-compatible upstreams"):
        client.completions.create(model=f"via-{upstream}", prompt="x")
    with pytest.raises(openai.BadRequestError, match="only served by OpenAI-compatible upstreams"):
        client.embeddings.create(model=f"via-{upstream}", input="x")
    assert matrix.fakes[upstream].requests == []


def test_embeddings_skip_targets_of_another_dialect(matrix: Matrix) -> None:
    matrix.fakes["anthropic"].requests.clear()
    fake = matrix.fakes["openai"]
    fake.script(
        Reply.json(
            {
                "object": "list",
                "model": "m",
                "data": [{"object": "embedding", "index": 0, "embedding": [1.0]}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )
    )
    raw = _oai(matrix).embeddings.with_raw_response.create(model="mixed", input="hi")
    assert raw.parse().data[0].embedding == [1.0]
    assert raw.headers["x-serving-target"] == "openai/openai-upstream-model"
    assert matrix.fakes["anthropic"].requests == []


# ---- Gemini paths ----------------------------------------------------------------------------


def test_gemini_v1_path_variant_is_served(matrix: Matrix) -> None:
    matrix.fakes["openai"].script(
        Reply.json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Yo"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )
    )
    client = genai.Client(
        api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=matrix.url, api_version="v1")
    )
    assert client.models.generate_content(model="via-openai", contents="Hi").text == "Yo"


@pytest.mark.parametrize(
    ("path", "status", "name"),
    [
        ("/v1beta/models/via-openai:streamGenerateContent", 400, "INVALID_ARGUMENT"),
        ("/v1beta/models/via-openai:embedContent", 404, "NOT_FOUND"),
        ("/v1beta/models/via-openai", 404, "NOT_FOUND"),
    ],
)
def test_gemini_path_errors_use_the_google_envelope(
    matrix: Matrix, path: str, status: int, name: str
) -> None:
    response = httpx.post(
        matrix.url + path,
        json={"contents": [{"parts": [{"text": "x"}]}]},
        headers={"x-goog-api-key": CLIENT_KEY},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (status, name)
    assert error["message"]


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_gemini_models_list_and_get(matrix: Matrix, api_version: str) -> None:
    options = types.HttpOptions(base_url=matrix.url, api_version=api_version)
    client = genai.Client(api_key=CLIENT_KEY, http_options=options)
    names = [m.name for m in client.models.list()]
    assert names == [
        "models/via-openai",
        "models/via-anthropic",
        "models/via-gemini",
        "models/dead",
        "models/mixed",
    ]
    model = client.models.get(model="via-gemini")
    assert model.name == "models/via-gemini"
    assert model.supported_actions == ["generateContent", "streamGenerateContent", "countTokens"]
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.get(model="nope")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


def test_models_list_and_retrieve_in_each_sdks_shape(matrix: Matrix) -> None:
    oai = _oai(matrix)
    assert [m.id for m in oai.models.list()][:1] == ["via-openai"]
    assert oai.models.retrieve("via-gemini").id == "via-gemini"
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("nope")
    # OpenAI's own shape: an unknown model is invalid_request_error, code model_not_found
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
    ant = anthropic.Anthropic(base_url=matrix.url, api_key=CLIENT_KEY, max_retries=0)
    assert [m.id for m in ant.models.list()][:1] == ["via-openai"]
    assert ant.models.retrieve("via-anthropic").id == "via-anthropic"
    with pytest.raises(anthropic.NotFoundError) as ant_caught:
        ant.models.retrieve("nope")
    assert ant_caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
