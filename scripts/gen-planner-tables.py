#!/usr/bin/env python3
"""Write the per-module weight tables of docs/planner.md from the catalog.

Usage:
  python scripts/gen-planner-tables.py           rewrite the generated section of docs/planner.md
  python scripts/gen-planner-tables.py --check   exit 1 if the committed section differs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.catalog.planner import plan  # noqa: E402
from serving.catalog.profiles import load_profiles  # noqa: E402
from serving.catalog.report import module_table  # noqa: E402

DOC = ROOT / "docs" / "planner.md"
BEGIN = "<!-- BEGIN GENERATED MODULE TABLES (scripts/gen-planner-tables.py) -->"
END = "<!-- END GENERATED MODULE TABLES -->"
# The layout each table is shown for: the profile's reference setup on H100s.
REFERENCE_TP = {
    ("llama-3.1-8b", "bf16"): 1,
    ("llama-3.1-8b", "fp8"): 1,
    ("llama-3.1-70b", "bf16"): 4,
    ("llama-3.1-70b", "fp8"): 2,
    ("llama-3.1-405b", "bf16"): 8,
    ("llama-3.1-405b", "fp8"): 8,
    ("mistral-7b", "bf16"): 1,
    ("mistral-7b", "fp8"): 1,
    ("mixtral-8x7b", "bf16"): 2,
    ("mixtral-8x7b", "fp8"): 1,
    ("smollm2-135m", "bf16"): 1,
}


def section() -> str:
    parts = [BEGIN, ""]
    profiles = load_profiles()
    for (name, precision), tp in REFERENCE_TP.items():
        profile = profiles[name]
        weights = profile.weights[precision]
        origin = weights.quant_method or weights.quantization or "as published"
        parts.append(f"#### {profile.display_name}, {precision.upper()} ({origin}), TP {tp}")
        parts.append("")
        parts.append(f"`{weights.repo}`")
        parts.append("")
        parts.append(module_table(profile, precision, tp))
        if profile.engine.runtime == "cuda":
            result = plan(profile, "h100", max(tp, 1), precision=precision, tensor_parallel=tp)
            mem = result.memory_per_gpu
            parts.append("")
            parts.append(
                f"On {tp}x H100 ({mem.total_gib} GiB as PyTorch sees it, x "
                f"{result.gpu_memory_utilization:.2f} = {mem.budget_gib} GiB): weights "
                f"{mem.weights_gib} + activations {mem.activations_gib} + non-torch "
                f"{mem.non_torch_gib} + CUDA graphs {mem.cuda_graphs_gib} GiB leave "
                f"{mem.kv_cache_gib} GiB of KV cache per GPU: "
                f"{result.kv_cache_tokens:,} tokens per replica as vLLM should report it "
                f"({result.kv_cache_tokens_planned:,} planned after the "
                f"{mem.reserve_gib} GiB reserve)"
                + ("." if result.fits else f"; it does not fit: {result.reason}.")
            )
        parts.append("")
    parts.append(END)
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    wanted = text[:start] + section() + text[end:]
    if args.check:
        if wanted != text:
            print("docs/planner.md is stale: run scripts/gen-planner-tables.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
