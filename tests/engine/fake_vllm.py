"""A stand-in for `vllm.entrypoints.openai.api_server`, for tests of the launcher, supervisor and
`serving serve` that must not start a real engine.

It takes the same flags the launcher passes, forks a helper process (as vLLM forks its engine
core) and serves `/health`, `/v1/models`, `/v1/chat/completions` and `/v1/completions`.
`FAKE_VLLM_MODE` picks a behaviour: `ok` (default), `crash` (exit 3 a moment after becoming
healthy), `fail` (exit 1 at once), `hang` (never answer), `wrong` (completions of the self-check
prompts differ from the reference, as a broken kernel's would). In the other modes completions
of a reference prompt (by its token ids, from `<model>/reference.json`) are the reference's.
With `FAKE_VLLM_PIDFILE` set it appends its and its helper's pids.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    served_model = "fake"
    # prompt token ids -> the reference continuation
    continuations: dict[tuple[int, ...], list[int]] = {}
    wrong = False

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {})
        elif self.path == "/v1/models":
            self._send(
                200, {"object": "list", "data": [{"id": self.served_model, "object": "model"}]}
            )
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/v1/completions":
            self._complete(request)
            return
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": "not found"})
            return
        answer = "The capital of France is Paris."
        self._send(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", self.served_model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
            },
        )

    def _complete(self, request: dict[str, Any]) -> None:
        prompt = tuple(request["prompt"])
        count = int(request.get("max_tokens", 8))
        tokens = list(self.continuations.get(prompt, [0] * count))[:count]
        if self.wrong:
            tokens = [(t + 7) % 49152 for t in tokens]
        text = "L'Etoile, la Marseillaise" if self.wrong else "The capital of France is Paris."
        choice = {"index": 0, "text": text, "finish_reason": "length", "token_ids": tokens}
        self._send(200, {"id": "cmpl-fake", "object": "text_completion", "choices": [choice]})

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--enforce-eager", action="store_true")
    # Profiles may add vLLM flags of their own (--dtype, tool flags): accept and ignore them.
    args, _ = parser.parse_known_args()
    mode = os.environ.get("FAKE_VLLM_MODE", "ok")
    if mode == "fail":
        print("fake vllm: failing at start", flush=True)
        return 1
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pidfile = os.environ.get("FAKE_VLLM_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as handle:
            handle.write(f"{os.getpid()} {helper.pid}\n")
    if mode == "hang":
        time.sleep(600)
        return 0
    _Handler.served_model = args.served_model_name
    _Handler.wrong = mode == "wrong"
    reference = Path(args.model) / "reference.json"
    if reference.is_file():
        prompts = json.loads(reference.read_text())["prompts"]
        _Handler.continuations = {tuple(p["prompt_token_ids"]): p["tokens"] for p in prompts}
    server = ThreadingHTTPServer((args.host, args.port), _Handler)
    if mode == "crash":
        threading.Timer(1.5, lambda: os._exit(3)).start()
    print(f"fake vllm serving {args.served_model_name} on {args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
