"""`serving route explain | report | train`: routing decisions, offline.

- explain: one request (any dialect, on stdin) through the config's routing, without sending
  it anywhere (a `model` classifier is asked, as the gateway would): its facts, the
  classifier's score, the rule that fired and the chain that would be walked.
- report: the decision log (routing.decision_log) as a table and a PNG of requests and cost
  per route against sending everything to one premium model. Cost only: whether the cheaper
  answers were good enough is for the user's own evaluation to say.
- train: fit the `trained` classifier's weights on the user's labelled prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from serving.gateway.errors import GatewayError

PREMIUM = "claude-3-5-sonnet-20241022"


def register(subparsers: Any) -> None:
    route = subparsers.add_parser("route", help="explain, report on and train request routing")
    sub = route.add_subparsers(dest="route_command", metavar="ACTION", required=True)

    explain = sub.add_parser("explain", help="how one request (JSON on stdin) would be routed")
    explain.add_argument("--config", required=True, help="gateway YAML config file")
    explain.add_argument("--model", help="the model asked for (default: the body's `model`)")
    explain.add_argument("--json", action="store_true", help="print one JSON object")
    explain.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header (hints, x-serving-private); repeatable",
    )
    explain.set_defaults(func=run_explain)

    report = sub.add_parser("report", help="table + PNG of a decision log's requests and cost")
    report.add_argument("log", help="the decision log (JSON lines)")
    report.add_argument("--out", default="route-report.png", help="PNG to write")
    report.add_argument("--premium", default=PREMIUM, help=f"always-premium model ({PREMIUM})")
    report.add_argument("--config", help="a gateway config whose cost.prices apply")
    report.set_defaults(func=run_report)

    train = sub.add_parser("train", help="fit the trained classifier on labelled prompts")
    train.add_argument("labels", help='JSON lines: {"prompt": ..., "label": "simple"|"complex"}')
    train.add_argument("--out", default="trained-weights.npz", help="weights file to write")
    train.add_argument("--epochs", type=int, default=300)
    train.set_defaults(func=run_train)


# ---- explain ----------------------------------------------------------------------------


def _headers(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep:
            raise ValueError(f"--header {item!r}: expected NAME:VALUE")
        out[name.strip().lower()] = value.strip()
    return out


_ANTHROPIC_PARTS = frozenset({"tool_use", "tool_result", "document", "thinking"})


def dialect_of(body: dict[str, Any]) -> str:
    """The request's dialect, from its shape (facts do not depend on it; it is shown)."""
    if "contents" in body:
        return "gemini"
    if "input" in body and "messages" not in body:
        return "responses"
    if "system" in body:
        return "anthropic"
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and (
                part.get("type") in _ANTHROPIC_PARTS or "source" in part
            ):
                return "anthropic"
    return "openai"


async def explain(
    settings: Any, body: dict[str, Any], model: str, headers: dict[str, str]
) -> dict[str, Any]:
    from serving.gateway.policy.caller import Caller
    from serving.gateway.policy.facts import build_facts
    from serving.gateway.policy.hints import read_hints
    from serving.gateway.runtime import Gateway

    gateway = Gateway(settings)
    try:
        dispatcher = gateway.dispatcher
        planner = dispatcher.planner
        asked = dispatcher.route(model)
        facts = build_facts(body)
        hints = read_hints(headers, settings.routing, None)
        decision = await planner.router.decide(asked, facts, hints)
        score, asked_classifier = decision.score, decision.score is not None
        if score is None:
            score, _ = await planner.router.classify(asked, facts)
        caller = Caller(dispatcher.privacy.marked(headers, False), None, hints)
        out: dict[str, Any] = {
            "dialect": dialect_of(body),
            "route": asked.model,
            "facts": {
                "prompt_tokens": decision.signals.prompt_tokens,
                "text_bytes": facts.text_bytes,
                "messages": facts.messages,
                "images": facts.count("image"),
                "audio": facts.count("audio") + int(facts.audio_output),
                "documents": facts.count("document"),
                "tools": len(facts.tools),
                "response_format": facts.response_format,
                "max_tokens": facts.max_tokens,
                "tasks": sorted(decision.signals.tasks),
                "needs": sorted(decision.signals.needs),
            },
            "hints": {
                "quality": hints.quality,
                "cost_sensitive": hints.cost_sensitive,
                "tier": hints.tier,
            },
            "classifier": {
                "kind": asked.classifier.kind,
                "by": score.by,
                "score": round(score.score, 4),
                "tier": score.tier,
                "asked_by_rules": asked_classifier,
                "fallback": decision.fallback,
            },
            "rule": decision.rule,
            "chosen_route": decision.route.model,
        }
        try:
            plan = await planner.plan(decision.route, facts, caller, None)
        except GatewayError as exc:
            out["chain"] = []
            out["error"] = {"status": exc.status, "code": exc.code, "message": exc.message}
        else:
            out["chain"] = [t.label for t in plan.targets]
            out["skipped"] = [f.describe() for f in plan.skipped]
            out["private"] = plan.private
        return out
    finally:
        await gateway.aclose()


def _print_explain(out: dict[str, Any]) -> None:
    f = out["facts"]
    print(f"request ({out['dialect']} dialect) to route {out['route']!r}")
    print(
        f"  facts: ~{f['prompt_tokens']} prompt tokens, {f['messages']} messages,"
        f" {f['images']} images, {f['audio']} audio, {f['documents']} documents,"
        f" {f['tools']} tools, format {f['response_format'] or 'text'}"
    )
    print(f"  tasks: {', '.join(f['tasks']) or 'none'}; needs: {', '.join(f['needs']) or 'none'}")
    h = out["hints"]
    print(
        f"  hints: quality {h['quality']}, cost-sensitive {h['cost_sensitive']}, tier {h['tier']}"
    )
    c = out["classifier"]
    note = "" if c["asked_by_rules"] else " (not needed by the rules that were reached)"
    print(f"  classifier {c['kind']} ({c['by']}): score {c['score']} -> {c['tier']}{note}")
    rule = out["rule"] or "none (the route's own chain)"
    print(f"  rule: {rule} -> route {out['chosen_route']!r}")
    if "error" in out:
        e = out["error"]
        print(f"  no chain: the client would get {e['status']} ({e['code']}): {e['message']}")
        return
    print(f"  chain: {' -> '.join(out['chain']) or '(empty)'}")
    for skip in out.get("skipped", []):
        print(f"    skipped {skip}")


def run_explain(args: argparse.Namespace) -> int:
    from serving.gateway.settings import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
        body = json.loads(sys.stdin.read())
        if not isinstance(body, dict):
            raise ValueError("the request on stdin must be a JSON object")
        model = args.model or body.get("model")
        if not isinstance(model, str):
            raise ValueError("the request names no model: pass --model")
        out = asyncio.run(explain(settings, body, model, _headers(args.header)))
    except (ConfigError, ValueError, GatewayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        _print_explain(out)
    return 0


# ---- report -------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    from serving.gateway.policy.savings import read_log, render_png, summarise, table

    try:
        entries = read_log(Path(args.log))
        prices = _prices(args.config)
        rows, total = summarise(entries, prices, args.premium)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows, total, args.premium))
    render_png(rows, total, args.premium, Path(args.out))
    print(f"\nwrote {args.out}")
    print(
        "This report is about cost only. Whether the cheaper routes answered well enough is a"
        " question for your own evaluation (your prompts, your graders); it is not measured here."
    )
    return 0


def _prices(config: str | None) -> dict[str, Any]:
    from serving.gateway.policy.cost import load_price_table
    from serving.gateway.settings import load_settings

    prices: dict[str, Any] = dict(load_price_table())
    if config:
        prices.update(load_settings(config).cost.prices)
    return prices


# ---- train --------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from serving.gateway.policy.classify import trained

    try:
        path = Path(args.labels)
        examples = trained.read_labels(path.read_text().splitlines(), str(path))
        folds = trained.cross_validate(examples, epochs=args.epochs)
        model = trained.train(examples, epochs=args.epochs)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fit = trained.accuracy(model, examples)
    out = Path(args.out)
    model.save(out)
    hard = sum(e.complex for e in examples)
    print(f"{len(examples)} labelled prompts ({hard} complex, {len(examples) - hard} simple)")
    print(f"5-fold cross-validated accuracy: {folds:.3f}  (training-set accuracy {fit:.3f})")
    print(f"wrote {out} ({out.stat().st_size // 1024} KB); use it with:")
    print(f"  classifier: {{kind: trained, weights: {out}}}")
    return 0
