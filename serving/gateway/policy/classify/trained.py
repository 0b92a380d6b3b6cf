"""The `trained` classifier: logistic regression over hashed word n-grams, in numpy.

Features: lower-cased word unigrams and bigrams of the last user turn (its first
`SCAN_CHARS` characters), hashed with CRC-32 into `DIM` buckets, counts scaled to unit length,
plus two dense features (log length, conversation depth). Weights are one float32 vector of
`DIM + 2` plus a bias: 64 KB as a compressed .npz. `serving route train LABELS.jsonl` fits
them on the user's own labels; the package ships weights fitted on the bundled sample
(serving/gateway/policy/classify/data/sample.jsonl).

CRC-32 rather than Python's `hash()`: the latter is salted per process, so weights would not
survive a restart.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from serving.gateway.policy.classify import Score, tier_of
from serving.gateway.policy.facts import RequestFacts

DIM = 1 << 14
SCAN_CHARS = 2000
WEIGHTS_FILE = Path(__file__).with_name("data") / "trained-weights.npz"
_WORD = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]")

Vector = npt.NDArray[np.float32]


def featurize(prompt: str, messages: int = 1) -> tuple[list[int], list[float]]:
    """Sparse indices and values of one prompt's feature vector."""
    words = _WORD.findall(prompt[:SCAN_CHARS].lower())  # bounded, like every routing read
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    counts: dict[int, float] = {}
    for g in grams:
        i = zlib.crc32(g.encode()) & (DIM - 1)
        counts[i] = counts.get(i, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    idx = list(counts)
    vals = [v / norm for v in counts.values()]
    idx += [DIM, DIM + 1]
    # log length in words, estimated from characters: the whole prompt is never split
    vals += [math.log1p(len(prompt) / 6) / 6.0, min(1.0, max(0, messages - 1) / 8)]
    return idx, vals


@dataclass(frozen=True, slots=True)
class LinearModel:
    weights: Vector  # DIM + 2
    bias: float

    def probability(self, prompt: str, messages: int = 1) -> float:
        idx, vals = featurize(prompt, messages)
        z = float(np.dot(self.weights[idx], np.asarray(vals, dtype=np.float32))) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def classify(self, facts: RequestFacts, threshold: float | None = None) -> Score:
        p = self.probability(facts.prompt or facts.text, facts.messages)
        return Score(tier_of(p, 0.5 if threshold is None else threshold), p, "trained")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(f, weights=self.weights, bias=np.float32(self.bias), dim=DIM)


def load(path: Path | None = None) -> LinearModel:
    target = path or WEIGHTS_FILE
    with np.load(target) as data:
        if int(data["dim"]) != DIM:
            raise ValueError(f"{target}: weights for {int(data['dim'])} buckets, not {DIM}")
        return LinearModel(data["weights"].astype(np.float32), float(data["bias"]))


@dataclass(frozen=True, slots=True)
class Example:
    prompt: str
    complex: bool
    task: str | None = None
    messages: int = 1


def read_labels(lines: Iterable[str], source: str = "labels") -> list[Example]:
    """JSON lines of `{"prompt": ..., "label": "simple"|"complex"}` (`text` for `prompt`
    also accepted; `task` and `messages` optional)."""
    out: list[Example] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = row.get("prompt", row.get("text"))
            label = row["label"]
        except (ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{source}:{n}: not a labelled prompt ({exc})") from exc
        if not isinstance(prompt, str) or label not in ("simple", "complex"):
            raise ValueError(f"{source}:{n}: needs a string `prompt` and label simple|complex")
        out.append(
            Example(prompt, label == "complex", row.get("task"), int(row.get("messages", 1)))
        )
    return out


def train(
    examples: Sequence[Example], *, epochs: int = 300, rate: float = 2.0, l2: float = 1e-4
) -> LinearModel:
    """Full-batch gradient descent on the logistic loss, classes weighted to balance."""
    if len({e.complex for e in examples}) < 2:
        raise ValueError("training needs both simple and complex examples")
    rows = [featurize(e.prompt, e.messages) for e in examples]
    y = np.asarray([1.0 if e.complex else 0.0 for e in examples], dtype=np.float64)
    pos = y.mean()
    sample_w = np.where(y == 1.0, 0.5 / pos, 0.5 / (1 - pos)) / len(y)
    w = np.zeros(DIM + 2, dtype=np.float64)
    b = 0.0
    flat_rows = np.repeat(np.arange(len(rows)), [len(r[0]) for r in rows])
    flat_idx = np.concatenate([np.asarray(r[0]) for r in rows])
    flat_val = np.concatenate([np.asarray(r[1]) for r in rows])
    for _ in range(epochs):
        z = np.bincount(flat_rows, weights=w[flat_idx] * flat_val, minlength=len(rows)) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        err = (p - y) * sample_w
        grad = np.bincount(flat_idx, weights=err[flat_rows] * flat_val, minlength=DIM + 2)
        w -= rate * (grad + l2 * w)
        b -= rate * float(err.sum())
    return LinearModel(w.astype(np.float32), b)


def accuracy(model: LinearModel, examples: Sequence[Example], threshold: float = 0.5) -> float:
    hits = sum(
        (model.probability(e.prompt, e.messages) >= threshold) == e.complex for e in examples
    )
    return hits / len(examples)


def cross_validate(examples: Sequence[Example], *, folds: int = 5, epochs: int = 300) -> float:
    """Mean held-out accuracy over `folds` interleaved folds (deterministic)."""
    scores = []
    for k in range(folds):
        held = [e for i, e in enumerate(examples) if i % folds == k]
        kept = [e for i, e in enumerate(examples) if i % folds != k]
        if held and len({e.complex for e in kept}) == 2:
            scores.append(accuracy(train(kept, epochs=epochs), held))
    if not scores:
        raise ValueError("too few examples to cross-validate")
    return sum(scores) / len(scores)
