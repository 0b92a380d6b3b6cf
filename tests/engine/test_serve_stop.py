"""How `serving serve` stops its children: the gateway gets its configured drain time before
SIGKILL, and a stop that had to kill a child, or a drain that cut requests, is not a clean 0."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from serving.engine.exitcodes import ExitCode
from serving.engine.process import ChildProcess
from serving.engine.serve import GATEWAY_STOP_MARGIN_S, _stop_both, gateway_grace

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def _child(code: str) -> ChildProcess:
    child = ChildProcess([sys.executable, "-c", code])
    child.start()
    time.sleep(0.3)  # let it install its handler
    return child


def test_the_gateway_grace_is_its_drain_deadline_plus_a_margin(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"drain": {"window": 2, "deadline": 12}},
                "upstreams": [{"name": "u", "base_url": "http://127.0.0.1:9/v1"}],
                "routes": [{"model": "m", "targets": [{"upstream": "u", "model": "m"}]}],
            }
        )
    )
    assert gateway_grace(config) == 12 + GATEWAY_STOP_MARGIN_S


def test_a_clean_stop_of_both_children_is_clean() -> None:
    reports: list[str] = []
    gateway = _child("import signal, sys, time; time.sleep(60)")
    engine = _child("import time; time.sleep(60)")
    assert _stop_both(engine, gateway, 5, reports.append)
    assert reports == ["[serve] stopped"]


def test_a_gateway_that_had_to_be_killed_is_not_a_clean_stop() -> None:
    reports: list[str] = []
    gateway = _child(IGNORES_TERM)
    engine = _child("import time; time.sleep(60)")
    assert not _stop_both(engine, gateway, 0.5, reports.append)
    assert gateway.killed and not engine.killed
    assert "[serve] the gateway did not drain within 0.5s: killed" in reports


def test_a_gateway_whose_drain_cut_requests_is_not_a_clean_stop() -> None:
    reports: list[str] = []
    exits_11 = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: sys.exit({int(ExitCode.DRAIN_INCOMPLETE)}))\n"
        "time.sleep(60)"
    )
    gateway = _child(exits_11)
    engine = _child("import time; time.sleep(60)")
    assert not _stop_both(engine, gateway, 5, reports.append)
    assert not gateway.killed
    assert "[serve] the gateway's drain deadline cut requests still in flight" in reports
