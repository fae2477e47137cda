"""Liveness: a SuperNode killed mid-round does not hang a run whose minimum is every node.

A real `flower-superlink` with 3 `flower-supernode`s on 127.0.0.1 runs the
test app `apps/liveness` (a `DeclearnMessageStrategy` with
`min_available_nodes = min_train_nodes = 3` and a 10 s `round_timeout`, and
plain ClientApps that train for 3 s). One SuperNode is killed while the first
round trains: the round ends with the two replies received when its timeout
passes, the next round samples the nodes still connected after waiting at
most `round_timeout`, and the run ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._flwr_procs import (
    PROCESS_TEST_MARKS,
    Processes,
    kill_tree,
    start_flwr_run,
    superlink_with_supernodes,
    wait_output,
)

pytestmark = PROCESS_TEST_MARKS

APP_DIR = Path(__file__).resolve().parent / "apps" / "liveness"
N_NODES = 3
ROUNDS = 2
ROUND_TIMEOUT = 20.0
# Per round: at most the reply timeout and the wait for nodes, plus start-up slack.
RUN_LIMIT = ROUNDS * 2 * ROUND_TIMEOUT + 60.0


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[Processes, Path]]:
    with superlink_with_supernodes(tmp_path, "live", N_NODES) as running:
        yield running


def test_a_supernode_killed_mid_round_does_not_hang_the_run(
    federation: tuple[Processes, Path],
) -> None:
    procs, home = federation
    markers = home.parent / "markers"
    markers.mkdir()
    overrides = (
        f"num-server-rounds={ROUNDS} min-nodes={N_NODES} round-timeout={ROUND_TIMEOUT} "
        f'train-seconds=1.0 marker-dir="{markers}"'
    )
    start = time.monotonic()
    run = start_flwr_run(
        [str(APP_DIR), "live", "--stream", "--run-config", overrides], procs.env, home.parent
    )
    try:
        # Kill one SuperNode (and its ClientApp) once the first round is training.
        deadline = time.monotonic() + 120.0
        while len(list(markers.glob("train-*-1"))) < N_NODES:
            assert time.monotonic() < deadline, "the first round never started training"
            assert run.poll() is None, run.communicate()[0].decode()[-3000:]
            time.sleep(0.2)
        victim = procs.procs.pop("supernode-0")
        assert not kill_tree([victim.pid], grace=2.0)
        victim.wait(timeout=10)
        killed_at = time.monotonic()
        text, hung = wait_output(run, RUN_LIMIT)
        if hung:
            pytest.fail(f"the run hung after a SuperNode died:\n{text[-5000:]}")
    finally:
        if run.poll() is None:
            kill_tree([run.pid], grace=1.0)
    elapsed = time.monotonic() - killed_at
    print(f"\nrun ended {elapsed:.1f}s after the kill ({time.monotonic() - start:.1f}s in all)")
    assert run.returncode == 0, text[-5000:]
    assert f"liveness: finished {ROUNDS} round(s)" in text, text[-5000:]
    assert "aggregated 2 client update(s)" in text, text[:8000]
    assert elapsed < RUN_LIMIT
    procs.check_alive()  # the SuperLink and the other SuperNodes survived
