"""The scripted OpenAI-compatible upstream every benchmark target calls: a raw ASGI app under
uvicorn (httptools, uvloop) with precomputed bodies, so its own cost is small and the same for
every target. A model named `m50` streams 50 chunks; any other streams 6 (the usage chunk
included), and answers JSON when not asked to stream.

    python scripts/bench/upstream.py --port PORT
"""

from __future__ import annotations

import argparse
import json
from typing import Any

WORDS = ["Paris", " is", " the", " capital", " of", " France", "."]


def completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Paris is the capital."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
        }
    ).encode()


def stream(model: str, chunks: int) -> bytes:
    """`chunks` SSE data frames: content deltas, then one with finish_reason and usage."""
    frames = []
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": model}
    for i in range(chunks - 1):
        delta = {"role": "assistant", "content": WORDS[0]} if i == 0 else {"content": WORDS[i % 7]}
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        frames.append(f"data: {json.dumps(chunk)}\n\n")
    last = {
        **head,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": chunks - 1,
            "total_tokens": 19 + chunks,
        },
    }
    frames.append(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n")
    return "".join(frames).encode()


def build_app() -> Any:
    bodies = {
        (False, False): (completion("m"), b"application/json"),
        (False, True): (completion("m50"), b"application/json"),
        (True, False): (stream("m", 6), b"text/event-stream"),
        (True, True): (stream("m50", 50), b"text/event-stream"),
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            body, ctype = b'{"object":"list","data":[]}', b"application/json"
        else:
            is_stream = b'"stream":true' in raw or b'"stream": true' in raw
            body, ctype = bodies[(is_stream, b'"m50"' in raw)]
        headers = [(b"content-type", ctype)]
        if ctype == b"text/event-stream":
            # chunked like a real engine's stream, one frame per write
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            frames = body.split(b"\n\n")[:-1]
            for frame in frames:
                await send(
                    {"type": "http.response.body", "body": frame + b"\n\n", "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        access_log=False,
        http="httptools",
        loop="uvloop",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
