"""Session-wide fixtures. `engine`: one real vLLM CPU engine serving the embedded model.

The engine is started through `serving launch` exactly as a user would, once per test session
(it takes ~20-90 s on 2 cores), and stopped with SIGTERM at the end; teardown fails the session if
the launcher or the vLLM server it started leaves any process behind. Tests that use it are
marked `@pytest.mark.engine`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from serving.engine.embedded import ensure_embedded_model
from tests.engine.running import (
    ENGINE_STARTUP_BUDGET_S,
    SERVED_MODEL,
    RunningEngine,
    healthy,
    start_engine,
    stop,
    terminate,
)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """A real vLLM CPU engine on 127.0.0.1 serving SmolLM2 as "smollm2"."""
    ensure_embedded_model()
    log_path = tmp_path_factory.mktemp("engine") / "engine.log"
    started = time.monotonic()
    process, port = start_engine(log_path)
    handle = RunningEngine(
        port=port,
        base_url=f"http://127.0.0.1:{port}/v1",
        served_model=SERVED_MODEL,
        launcher_pid=process.pid,
        log_path=log_path,
    )
    while not healthy(f"http://127.0.0.1:{port}/health"):
        if process.poll() is not None or time.monotonic() - started > ENGINE_STARTUP_BUDGET_S:
            terminate(process)
            pytest.fail(
                f"the engine did not become healthy (launcher status {process.poll()}) "
                f"within {ENGINE_STARTUP_BUDGET_S:.0f} s; log tail:\n{handle.log_tail()}"
            )
        time.sleep(1.0)
    print(f"\n[engine fixture] healthy after {time.monotonic() - started:.0f} s on port {port}")
    yield handle
    stop(process, handle)
