"""Regenerate docs/routing.md's agreement section: each complexity classifier against the
bundled labelled sample (accuracy, confusion matrix), the coding-task detector against the
sample's task labels, and the cost each classifier implies at the seed's prices.

    python scripts/routing_agreement.py [--engine-url URL --engine-model NAME] [--check]

The `model` classifier needs a running engine (`--engine-url http://127.0.0.1:8001/v1`,
e.g. `make serve`); without one its row says it was not measured. `trained` is measured by
5-fold cross-validation (weights fitted on four fifths, scored on the fifth): the shipped
weights were fitted on the whole sample, so scoring them on it would flatter them.
`--check` fails when the doc is not what the script would write.

Implied cost: the router pattern, simple -> gpt-4o-mini, complex -> claude-3-5-sonnet, versus
always claude-3-5-sonnet; each prompt costs its estimated input tokens plus an assumed
`OUTPUT_TOKENS` of output at the price table's prices.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.gateway.policy.classify import features, trained  # noqa: E402
from serving.gateway.policy.classify.model import ModelClassifier  # noqa: E402
from serving.gateway.policy.context import ContextPolicy  # noqa: E402
from serving.gateway.policy.cost import load_price_table  # noqa: E402
from serving.gateway.policy.facts import RequestFacts, build_facts  # noqa: E402
from serving.gateway.settings import Context, parse_settings  # noqa: E402

SAMPLE = ROOT / "serving/gateway/policy/classify/data/sample.jsonl"
DOC = ROOT / "docs/routing.md"
START, END = "<!-- agreement:start -->", "<!-- agreement:end -->"
CHEAP, PREMIUM = "gpt-4o-mini", "claude-3-5-sonnet-20241022"
OUTPUT_TOKENS = 300


def _facts(e: trained.Example) -> RequestFacts:
    return build_facts({"messages": [{"role": "user", "content": e.prompt}]})


def _matrix(truth: list[bool], said: list[bool]) -> tuple[int, int, int, int]:
    """(simple->simple, simple->complex, complex->simple, complex->complex)."""
    ss = sum(1 for t, s in zip(truth, said, strict=True) if not t and not s)
    sc = sum(1 for t, s in zip(truth, said, strict=True) if not t and s)
    cs = sum(1 for t, s in zip(truth, said, strict=True) if t and not s)
    cc = sum(1 for t, s in zip(truth, said, strict=True) if t and s)
    return ss, sc, cs, cc


def _cost(tokens: list[int], complex_: list[bool]) -> float:
    prices = load_price_table()
    total = 0.0
    for n, hard in zip(tokens, complex_, strict=True):
        p = prices[PREMIUM if hard else CHEAP]
        total += (n * p.input + OUTPUT_TOKENS * p.output) / 1e6
    return total


def _cv_predictions(examples: list[trained.Example], folds: int = 5) -> list[bool]:
    out = [False] * len(examples)
    for k in range(folds):
        kept = [e for i, e in enumerate(examples) if i % folds != k]
        model = trained.train(kept)
        for i, e in enumerate(examples):
            if i % folds == k:
                out[i] = model.probability(e.prompt, e.messages) >= 0.5
    return out


async def _model_predictions(
    examples: list[trained.Example], url: str, name: str
) -> tuple[list[bool], int]:
    from serving.gateway.runtime import Gateway

    settings = parse_settings(
        {
            "upstreams": [{"name": "engine", "base_url": url, "timeouts": {"first_byte": 120}}],
            "routes": [{"model": "m", "targets": [{"upstream": "engine", "model": name}]}],
        }
    )
    gw = Gateway(settings)
    config = (
        parse_settings(
            {
                "upstreams": [{"name": "engine", "base_url": url}],
                "routes": [
                    {
                        "model": "m",
                        "targets": [{"upstream": "engine", "model": name}],
                        "classifier": {
                            "kind": "model",
                            "upstream": "engine",
                            "model": name,
                            "timeout": 60,
                        },
                    }
                ],
            }
        )
        .routes[0]
        .classifier
    )
    clf = ModelClassifier(config, gw.upstreams["engine"])
    out: list[bool] = []
    fell_back = 0
    try:
        for e in examples:
            score, why = await clf.classify(_facts(e))
            fell_back += why is not None
            out.append(score.tier == "complex")
    finally:
        await gw.aclose()
    return out, fell_back


def section(engine_url: str | None, engine_model: str) -> str:
    examples = trained.read_labels(SAMPLE.read_text().splitlines(), str(SAMPLE))
    truth = [e.complex for e in examples]
    ctx = ContextPolicy(Context())
    facts = [_facts(e) for e in examples]
    tokens = [ctx.text_tokens(f) for f in facts]
    rows: list[tuple[str, list[bool] | None, str]] = [
        (
            "features",
            [features.classify(f).tier == "complex" for f in facts],
            "weights in classify/features.py",
        ),
        ("trained", _cv_predictions(examples), "5-fold cross-validation"),
    ]
    if engine_url:
        said, fell = asyncio.run(_model_predictions(examples, engine_url, engine_model))
        rows.append(("model", said, f"{engine_model} under structured output; {fell} fell back"))
    else:
        rows.append(("model", None, "not measured: run with --engine-url"))
    premium = _cost(tokens, [True] * len(truth))
    oracle = _cost(tokens, truth)
    n_complex = sum(truth)
    lines = [
        START,
        f"Sample: {len(examples)} prompts, {n_complex} complex and"
        f" {len(examples) - n_complex} simple"
        " (`serving/gateway/policy/classify/data/sample.jsonl`)."
        f" Cost: simple → {CHEAP}, complex → {PREMIUM}, each prompt its estimated input plus"
        f" {OUTPUT_TOKENS} output tokens.",
        "",
        "| classifier | accuracy | simple→simple | simple→complex | complex→simple"
        " | complex→complex | cost | saved vs always-premium | how measured |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, said, how in rows:
        if said is None:
            lines.append(f"| {name} | — | — | — | — | — | — | — | {how} |")
            continue
        ss, sc, cs, cc = _matrix(truth, said)
        acc = (ss + cc) / len(truth)
        cost = _cost(tokens, said)
        lines.append(
            f"| {name} | {acc:.1%} | {ss} | {sc} | {cs} | {cc} | ${cost:.4f}"
            f" | {1 - cost / premium:.0%} | {how} |"
        )
    lines.append(
        f"| labels (oracle) | 100% | {len(truth) - n_complex} | 0 | 0 | {n_complex} | ${oracle:.4f}"
        f" | {1 - oracle / premium:.0%} | the sample's own labels |"
    )
    lines.append(
        f"| always premium | — | — | — | — | — | ${premium:.4f} | 0% | every prompt to {PREMIUM} |"
    )
    coding_truth = [e.task == "coding" for e in examples]
    coding_said = [features.cues(e.prompt).coding for e in examples]
    nn, ny, yn, yy = _matrix(coding_truth, coding_said)
    lines += [
        "",
        f"Coding-task detection against the sample's `task` labels: accuracy"
        f" {(nn + yy) / len(examples):.1%}; {yy} of {yy + yn} coding prompts detected,"
        f" {ny} other prompts flagged as coding.",
        "",
        "A complex prompt sent to the cheap tier (the complex→simple column) is where quality"
        " may suffer; only your own evaluation on your own traffic can say how much.",
        END,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine-url")
    parser.add_argument("--engine-model", default="smollm2")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--doc", default=str(DOC), help="the document to update")
    args = parser.parse_args()
    doc = Path(args.doc)
    text = doc.read_text()
    if START not in text or END not in text:
        print(f"{doc}: no {START} ... {END} markers", file=sys.stderr)
        return 2
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    body = section(args.engine_url, args.engine_model)
    new = before + body + after
    if args.check:
        same = new == text
        print("docs/routing.md is up to date" if same else "docs/routing.md is stale")
        return 0 if same else 1
    doc.write_text(new)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
