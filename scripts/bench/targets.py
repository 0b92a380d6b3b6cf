"""The benchmark's targets and scenarios: the scripted upstream (`direct`), the gateway
(`serving`) and the LiteLLM proxy, both proxies with client auth on and one worker, both
pointed at the same upstream; and per client dialect and mode, the request each one is sent."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import HERE, ROOT, BenchError, free_port, start, wait_ready

KEY = "sk-bench-0123456789abcdef"  # the one client key both proxies accept
QUESTION = "What is the capital of France?"
MODES = {"json": ("m", False), "stream6": ("m", True), "stream50": ("m50", True)}
DIALECTS = ("openai", "anthropic", "gemini")


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


def request(dialect: str, mode: str) -> Request:
    """What a client of `dialect` sends for `mode`, with the key in its SDK's header."""
    model, stream = MODES[mode]
    if dialect == "openai":
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
        if stream:
            body["stream"] = True
        return Request("/v1/chat/completions", _json(body), {"authorization": f"Bearer {KEY}"})
    if dialect == "anthropic":
        body = {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": QUESTION}],
        }
        if stream:
            body["stream"] = True
        headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        return Request("/v1/messages", _json(body), headers)
    if dialect == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}]}
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return Request(f"/v1beta/models/{model}:{method}", _json(body), {"x-goog-api-key": KEY})
    raise ValueError(dialect)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def start_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = start([sys.executable, str(HERE / "upstream.py"), "--port", str(port)], log=log)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", proc=proc)
    return proc


def start_floor(port: int, up_port: int, log: Path) -> subprocess.Popen[bytes]:
    """The no-logic proxy on the gateway's stack (floor_proxy.py): what uvicorn and the
    gateway's HTTP client cost."""
    argv = [sys.executable, str(HERE / "floor_proxy.py"), "--port", str(port)]
    proc = start([*argv, "--upstream", f"http://127.0.0.1:{up_port}"], log=log)
    wait_ready(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


def serving_config(up_port: int) -> dict[str, Any]:
    upstream = {"name": "fake", "base_url": f"http://127.0.0.1:{up_port}/v1"}
    routes = [
        {"model": name, "targets": [{"upstream": "fake", "model": name}]} for name in ("m", "m50")
    ]
    return {
        "server": {"api_keys_env": "BENCH_CLIENT_KEYS"},
        "upstreams": [upstream],
        "routes": routes,
    }


def start_serving(
    port: int, up_port: int, workdir: Path, log: Path, config: dict[str, Any] | None = None
) -> subprocess.Popen[bytes]:
    path = workdir / f"serving-{port}.yaml"
    path.write_text(json.dumps(config or serving_config(up_port)))  # JSON is YAML
    argv = [sys.executable, "-m", "serving", "gateway", "--config", str(path)]
    argv += ["--port", str(port), "--log-level", "warning"]
    env = {"BENCH_CLIENT_KEYS": KEY, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = start(argv, env=env, log=log)
    wait_ready(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


def start_upstream_and_serving(
    workdir: Path, procs: list[subprocess.Popen[bytes]]
) -> tuple[int, int, subprocess.Popen[bytes]]:
    """The scripted upstream and serving in front of it, on free ports, each appended to
    `procs` as it starts (the caller stops them, however the start ends): the upstream's port,
    the gateway's, and the gateway's process."""
    up_port, gw_port = free_port(), free_port()
    procs.append(start_upstream(up_port, workdir / "upstream.log"))
    gateway = start_serving(gw_port, up_port, workdir, workdir / "serving.log")
    procs.append(gateway)
    return up_port, gw_port, gateway


# LiteLLM's cheapest fair configuration: no database (so no spend logs, key lookups or batch
# writers), no callbacks, no background health checks, one worker like the gateway, its logs at
# ERROR; a master key, so it authenticates clients as the gateway does.
LITELLM_ENV = {
    "LITELLM_MODE": "PRODUCTION",  # no .env loading from the working directory
    "LITELLM_LOG": "ERROR",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost-map download at start
    "LITELLM_TELEMETRY_DISABLED": "true",
}


def litellm_config(up_port: int) -> dict[str, Any]:
    models = [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_base": f"http://127.0.0.1:{up_port}/v1",
                "api_key": "fake",
            },
        }
        for name in ("m", "m50")
    ]
    return {
        "model_list": models,
        "litellm_settings": {
            "set_verbose": False,
            "json_logs": False,
            "callbacks": [],
            "success_callback": [],
            "failure_callback": [],
            "turn_off_message_logging": True,
            "request_timeout": 30,
            # /v1/messages for an openai/ model goes to /v1/responses unless this is set; the
            # scripted upstream, like the gateway's route, speaks chat completions
            "use_chat_completions_url_for_anthropic_messages": True,
        },
        "general_settings": {
            "master_key": KEY,
            "disable_spend_logs": True,
            "disable_error_logs": True,
            "store_model_in_db": False,
            "background_health_checks": False,
        },
    }


def find_litellm(venv: Path) -> tuple[Path, str]:
    exe = venv / "bin" / "litellm"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        found = shutil.which("litellm")
        if found is None:
            raise BenchError(f"no litellm at {exe}: run bash scripts/setup-litellm-venv.sh")
        exe = Path(found)
    version = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        code = "import importlib.metadata as m; print(m.version('litellm'))"
        version = subprocess.run(
            [str(exe.parent / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    return exe.absolute(), version


def start_litellm(
    exe: Path, port: int, up_port: int, workdir: Path, log: Path
) -> subprocess.Popen[bytes]:
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(litellm_config(up_port)))
    argv = [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    proc = start(argv, env=LITELLM_ENV, cwd=workdir, log=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/liveliness", timeout=240, proc=proc)
    except BenchError as exc:
        tail = log.read_text(errors="replace")[-3000:]
        raise BenchError(f"LiteLLM: {exc}\n--- its log:\n{tail}") from None
    return proc
