"""`serving route explain | report | train`, and the gateway's decision log they read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "deploy/examples/seed-router.yaml"
SAMPLE = REPO / "serving/gateway/policy/classify/data/sample.jsonl"


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_explain_any_dialect() -> None:
    anthropic = {
        "model": "auto",
        "max_tokens": 50,
        "system": "be brief",
        "messages": [{"role": "user", "content": "Write a Python function to reverse a list"}],
    }
    out = _cli("route", "explain", "--config", str(SEED), "--json", stdin=json.dumps(anthropic))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["dialect"] == "anthropic" and got["rule"] == "coding"
    assert got["chain"] == ["anthropic/claude-3-5-sonnet-20241022"]
    assert "coding" in got["facts"]["tasks"] and got["classifier"]["kind"] == "features"
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    out = _cli(
        "route",
        "explain",
        "--config",
        str(SEED),
        "--model",
        "auto",
        "--header",
        "x-serving-quality: best",
        stdin=json.dumps(gemini),
    )
    assert out.returncode == 0, out.stderr
    assert "rule: best -> route 'claude-3-5-sonnet'" in out.stdout
    assert "(gemini dialect)" in out.stdout


def test_explain_names_a_missing_capability(tmp_path: Path) -> None:
    data = yaml.safe_load(SEED.read_text())
    config = tmp_path / "seed.yaml"
    config.write_text(yaml.safe_dump(data))
    audio = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
                ],
            }
        ],
    }
    out = _cli("route", "explain", "--config", str(config), "--json", stdin=json.dumps(audio))
    got = json.loads(out.stdout)
    assert got["chain"] == [] and got["error"]["code"] == "unsupported_capability"
    assert "audio" in got["error"]["message"]


def test_explain_refuses_a_body_without_a_model() -> None:
    out = _cli("route", "explain", "--config", str(SEED), stdin='{"contents": []}')
    assert out.returncode == 2 and "--model" in out.stderr


def test_decision_log_then_report(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    fake = FakeUpstream(
        [Reply.json(chat_completion("ok", prompt_tokens=1000, completion_tokens=200))]
    )
    data = yaml.safe_load(SEED.read_text())
    data["routing"] = {"decision_log": str(log)}
    secret = "my dog is called Zorblax"
    with serve(fake.app) as url:
        for u in data["upstreams"]:
            u.update(dialect="openai", base_url=url + "/v1")
        with serve(create_app(parse_settings(data))) as gw:
            for headers, text in (
                ({"x-serving-cost-sensitive": "1", "x-serving-quality": "basic"}, secret),
                ({"x-serving-cost-sensitive": "1", "x-serving-quality": "basic"}, "hi"),
                ({}, "Write a Python function " + secret),
                ({}, "hello"),
            ):
                r = httpx.post(
                    gw + "/v1/chat/completions",
                    json={"model": "auto", "messages": [{"role": "user", "content": text}]},
                    headers=headers,
                    timeout=10,
                )
                assert r.status_code == 200
    lines = log.read_text().splitlines()
    assert len(lines) == 4
    assert "Zorblax" not in log.read_text() and "Python" not in log.read_text()  # never content
    entries: list[dict[str, Any]] = [json.loads(x) for x in lines]
    assert [e["rule"] for e in entries] == ["cost-basic", "cost-basic", "coding", "otherwise"]
    assert entries[0]["route"] == "gpt-4o-mini" and entries[0]["input_tokens"] == 1000
    assert entries[0]["cost_usd"] == 1000 * 0.15 / 1e6 + 200 * 0.60 / 1e6
    png = tmp_path / "report.png"
    out = _cli("route", "report", str(log), "--out", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "own evaluation" in out.stdout
    row = next(x for x in out.stdout.splitlines() if x.startswith("gpt-4o-mini"))
    # 2 x (1000 in, 200 out): routed 2 x 0.00027 = 0.00054, premium (Sonnet 3/15) 0.012: 96% saved
    assert row.split()[1:4] == ["2", "2000", "400"] and "0.0120" in row and "96%" in row


def test_train_cli(tmp_path: Path) -> None:
    out_file = tmp_path / "weights.npz"
    out = _cli("route", "train", str(SAMPLE), "--out", str(out_file), "--epochs", "100")
    assert out.returncode == 0, out.stderr
    assert "cross-validated accuracy" in out.stdout and out_file.stat().st_size > 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "label": "medium"}\n')
    out = _cli("route", "train", str(bad), "--out", str(out_file))
    assert out.returncode == 2 and "bad.jsonl:1" in out.stderr
