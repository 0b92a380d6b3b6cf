"""Render the serving chart with the real `helm` binary and look through the objects it makes.

Tests never skip when helm is missing: `require_helm` fails with the command that installs it.
Renders are cached per session (keyed by their arguments), so each example renders once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "serving"
EXAMPLES = CHART / "examples"
RELEASE = "rel"
NAMESPACE = "serving"
FULLNAME = f"{RELEASE}-serving"
PROFILES = CHART / "files" / "profiles.yaml"
GIB = 1 << 30

Obj = dict[str, Any]


def require_helm() -> str:
    path = shutil.which("helm")
    if path is None:
        pytest.fail(
            "helm is not on PATH. Run `make tools` (bash scripts/fetch-helm.sh .tools) and put "
            ".tools on PATH (`make test` does), or install helm with your package manager.",
            pytrace=False,
        )
    return path


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_helm(), *args], capture_output=True, text=True, check=False, timeout=120
    )


@dataclass(frozen=True)
class Rendered:
    """The output of one `helm template`: the text and the parsed objects."""

    text: str
    objects: list[Obj] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> Obj:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} named {name}, found {self.names(kind)}"
        return found[0]

    def names(self, kind: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.all(kind))

    def gateway_config(self) -> Obj:
        cm = self.one("ConfigMap", f"{FULLNAME}-gateway")
        loaded = yaml.safe_load(cm["data"]["gateway.yaml"])
        assert isinstance(loaded, dict)
        return loaded


class HelmFailed(AssertionError):
    """`helm template` failed; the message is helm's stderr."""


class Renderer:
    """Caches renders for the session; each distinct argument list renders once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], Rendered | HelmFailed] = {}

    def render(self, *files: str, values: Obj | None = None) -> Rendered:
        result = self.attempt(*files, values=values)
        if isinstance(result, HelmFailed):
            raise result
        return result

    def error(self, *files: str, values: Obj | None = None) -> str:
        """helm's error message for values that must be rejected."""
        result = self.attempt(*files, values=values)
        assert isinstance(result, HelmFailed), "helm template accepted values it should reject"
        return str(result)

    def attempt(self, *files: str, values: Obj | None = None) -> Rendered | HelmFailed:
        key = (*files, json.dumps(values, sort_keys=True))
        if key not in self._cache:
            self._cache[key] = self._run(files, values)
        return self._cache[key]

    def _run(self, files: tuple[str, ...], values: Obj | None) -> Rendered | HelmFailed:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for f in files:
            args += ["-f", str(EXAMPLES / f)]
        if values is not None:
            overrides = _write_values(values)
            args += ["-f", str(overrides)]
        proc = run_helm(*args)
        if proc.returncode != 0:
            return HelmFailed(proc.stderr)
        objects = [o for o in yaml.safe_load_all(proc.stdout) if o]
        return Rendered(text=proc.stdout, objects=objects)


_VALUES_DIR: list[Path] = []


def _write_values(values: Obj) -> Path:
    """Inline values go through a file: --set cannot express lists of maps faithfully."""
    if not _VALUES_DIR:
        _VALUES_DIR.append(Path(tempfile.mkdtemp(prefix="serving-helm-values-")))
    text = yaml.safe_dump(values, sort_keys=True)
    path = _VALUES_DIR[0] / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    path.write_text(text)
    return path


def example_files() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.yaml"))


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj, Obj]]:
    """(role, pod metadata, pod spec) of a Deployment or of both LeaderWorkerSet templates."""
    if obj["kind"] == "Deployment":
        tpl = obj["spec"]["template"]
        yield "single", tpl["metadata"], tpl["spec"]
    elif obj["kind"] == "LeaderWorkerSet":
        lwt = obj["spec"]["leaderWorkerTemplate"]
        yield "leader", lwt["leaderTemplate"]["metadata"], lwt["leaderTemplate"]["spec"]
        yield "worker", lwt["workerTemplate"]["metadata"], lwt["workerTemplate"]["spec"]


def engine_workloads(rendered: Rendered) -> list[Obj]:
    return [
        o
        for o in rendered.objects
        if o["kind"] in ("Deployment", "LeaderWorkerSet")
        and o["metadata"]["labels"].get("app.kubernetes.io/component") == "engine"
    ]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels + In/NotIn/Exists matchExpressions) matches."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        if op == "In" and labels.get(key) not in expr["values"]:
            return False
        if op == "NotIn" and labels.get(key) in expr["values"]:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def arg_value(args: list[str], flag: str) -> str | None:
    """The value after `flag` in an argument list (None when the flag is absent)."""
    if flag in args:
        i = args.index(flag)
        return args[i + 1]
    return None


def chart_profiles() -> dict[str, Obj]:
    """The chart's (generated) profile file."""
    loaded = yaml.safe_load(PROFILES.read_text())
    assert isinstance(loaded, dict)
    return loaded


def env_of(container: Obj) -> dict[str, Obj]:
    """A container's env entries by name."""
    return {e["name"]: e for e in container.get("env", [])}


def container(spec: Obj) -> Obj:
    """The one container of an engine pod."""
    containers = spec["containers"]
    assert len(containers) == 1
    result: Obj = containers[0]
    return result


def server_args(workload: Obj) -> list[str]:
    """vLLM's command line, from the plain command or from the Ray leader's exec line."""
    for role, _, spec in pod_specs(workload):
        command: list[str] = container(spec)["command"]
        if role == "single":
            return command
        if role == "leader":
            exec_line = next(ln for ln in command[-1].splitlines() if ln.startswith("exec "))
            return [part.strip("'") for part in exec_line.split()[1:]]
    raise AssertionError(f"no server container in {workload['metadata']['name']}")
