"""Profile the gateway's hot path with py-spy: a flame graph (SVG) and a text summary (the
functions with the most samples, inclusive and self) per scenario and concurrency, while the
load driver runs OpenAI pass-through or Anthropic translated traffic against the scripted
upstream. Writes docs/bench/profile-<scenario>-c<N>.svg and .txt.

    python scripts/bench/profile_hot_path.py [--seconds 15] [--concurrency 1,64]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import load
import targets as t
from common import ROOT, load_average, stop

SCENARIOS = {"openai-json": ("openai", "json"), "anthropic-stream6": ("anthropic", "stream6")}


def _where(frame: str) -> str:
    """The file of a py-spy frame, "func (path/to/file.py:12)" -> "path/to/file.py"."""
    _, _, place = frame.rpartition(" (")
    return place.rsplit(":", 1)[0] if place else frame


def summarise(collapsed: Path, top: int = 40) -> str:
    """Inclusive and self sample counts per function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
        by_file[_where(frames[-1])] += n
    out = [f"samples: {total}", "", "inclusive %  function (file:line)"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(top)]
    out += ["", "self %  function (file:line)"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "self %  by file (where the time is spent, callees excluded)"]
    out += [f"{100 * n / total:6.1f}  {f}" for f, n in by_file.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    parser.add_argument("--top", type=int, default=40, help="functions listed per table")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("profile: py-spy is not installed (pip install py-spy)")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    procs = []
    try:
        _, gw_port, gateway = t.start_upstream_and_serving(workdir, procs)
        for name in args.scenarios.split(","):
            dialect, mode = SCENARIOS[name]
            req = t.request(dialect, mode)
            url = f"http://127.0.0.1:{gw_port}{req.path}"
            for c in (int(x) for x in args.concurrency.split(",")):
                load.drive(url, req.body, req.headers, requests=200, concurrency=c, seconds=5)
                stem = args.out / f"profile-{name}-c{c}"
                raw = workdir / f"{stem.name}.collapsed"
                spy = [
                    "record",
                    "--pid",
                    str(gateway.pid),
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--gil",
                ]
                spy += ["--duration", str(int(args.seconds))]
                result: dict[str, load.Run] = {}

                def drive(
                    url: str = url,
                    req: t.Request = req,
                    c: int = c,
                    result: dict[str, load.Run] = result,
                ) -> None:
                    result["run"] = load.drive(
                        url,
                        req.body,
                        req.headers,
                        requests=10**6,
                        concurrency=c,
                        seconds=args.seconds + 1,
                    )

                runner = threading.Thread(target=drive)
                runner.start()
                # two samplers at once (non-blocking ones only read memory): the flame graph
                # and the collapsed stacks the text summary is made from
                svg = subprocess.Popen(
                    [py_spy, *spy, "--format", "flamegraph", "-o", str(stem) + ".svg"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                subprocess.run(
                    [py_spy, *spy, "--format", "raw", "-o", str(raw)],
                    check=True,
                    capture_output=True,
                )
                svg.wait(timeout=60)
                runner.join()
                run = result["run"]
                head = (
                    f"{name}, concurrency {c}: {run.done} requests in {run.wall:.1f} s, "
                    f"load average {load_average()[0]}\n"
                )
                stem.with_suffix(".txt").write_text(head + summarise(raw, args.top))
                print(f"wrote {stem}.txt/.svg ({run.done} requests)", flush=True)
    finally:
        stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
