"""Reference answers for the engine self-check, computed by transformers on the prepared weights.

A few fixed chat prompts are run greedily in float32 (the numerically safe path on every CPU)
for `STEPS` tokens each. For every step the file keeps the chosen token and its margin over the
runner-up (in logits): where the margin is small, another correct implementation may pick the
other token, so an engine that takes the runner-up there has diverged legitimately and is
compared no further.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REFERENCE_FILE = "reference.json"
STEPS = 8
# Logits of two correct fp32 implementations differ by ~1e-3; a broken kernel by whole units.
TIE_MARGIN = 0.5
QUESTIONS = (
    "What is the capital of France?",
    "What color is the sky on a clear day?",
    "What is the largest planet in the solar system?",
)


@dataclass(frozen=True)
class ReferencePrompt:
    question: str
    prompt_token_ids: tuple[int, ...]
    tokens: tuple[int, ...]  # the greedy continuation
    runners_up: tuple[int, ...]  # the second-best token at each step
    margins: tuple[float, ...]  # top-1 minus top-2 logit at each step
    text: str  # `tokens` decoded, for messages


@dataclass(frozen=True)
class Reference:
    prompts: tuple[ReferencePrompt, ...]
    dtype: str = "float32"
    tie_margin: float = TIE_MARGIN

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Reference:
        data: Any = json.loads(text)
        prompts = tuple(
            ReferencePrompt(
                question=str(p["question"]),
                prompt_token_ids=tuple(int(t) for t in p["prompt_token_ids"]),
                tokens=tuple(int(t) for t in p["tokens"]),
                runners_up=tuple(int(t) for t in p["runners_up"]),
                margins=tuple(float(m) for m in p["margins"]),
                text=str(p["text"]),
            )
            for p in data["prompts"]
        )
        return cls(prompts=prompts, dtype=str(data["dtype"]), tie_margin=float(data["tie_margin"]))


def load_reference(folder: Path) -> Reference | None:
    path = folder / REFERENCE_FILE
    if not path.is_file():
        return None
    try:
        return Reference.from_json(path.read_text())
    except (ValueError, KeyError, TypeError):
        return None


def compute_reference(folder: Path, questions: tuple[str, ...] = QUESTIONS) -> Reference:
    """Greedy float32 continuations of `questions` by transformers on the weights in `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # transformers' models are untyped; hold it as Any rather than ignore each call.
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    prompts = []
    with torch.inference_mode():
        for question in questions:
            chat = [{"role": "user", "content": question}]
            text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
            sequence, tokens, runners_up, margins = list(ids), [], [], []
            for _ in range(STEPS):
                logits = model(torch.tensor([sequence])).logits[0, -1].float()
                top = torch.topk(logits, 2)
                tokens.append(int(top.indices[0]))
                runners_up.append(int(top.indices[1]))
                margins.append(round(float(top.values[0] - top.values[1]), 4))
                sequence.append(tokens[-1])
            prompts.append(
                ReferencePrompt(
                    question=question,
                    prompt_token_ids=tuple(ids),
                    tokens=tuple(tokens),
                    runners_up=tuple(runners_up),
                    margins=tuple(margins),
                    text=str(tokenizer.decode(tokens)),
                )
            )
    return Reference(prompts=tuple(prompts))
