"""`flwr run` of the quickstart app: on a SuperLink with 3 SuperNodes, and as the README says.

The processes, their ports, FLWR_HOME and their cleanup: `tests/_flwr_procs.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from tests._flwr_procs import (
    PROCESS_TEST_MARKS,
    Processes,
    flwr_run,
    flwr_run_local,
    simulation_args,
    superlink_with_supernodes,
)

pytestmark = PROCESS_TEST_MARKS

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
N_NODES = 3
ROUNDS = 2
SIM_ROUNDS = 3
CONNECTION = "e2e-deployment"
RUN_TIMEOUT = 420.0


def _check_results(result_file: Path, rounds: int, min_accuracy: float, log: str) -> None:
    assert result_file.exists(), log[-5000:]
    history = json.loads(result_file.read_text())["rounds"]
    assert [r["round"] for r in history] == list(range(rounds + 1))
    print("accuracy by round:", [round(r["accuracy"], 3) for r in history])
    assert history[0]["accuracy"] < 0.3
    assert history[-1]["accuracy"] >= min_accuracy
    # The per-round accuracy the quickstart promises is in the streamed logs.
    assert f"round {rounds}: test accuracy" in log, log[-5000:]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Path]]:
    """A running SuperLink with N_NODES SuperNodes; yields (processes, FLWR_HOME)."""
    root = tmp_path_factory.mktemp("deployment")
    with superlink_with_supernodes(root, CONNECTION, N_NODES, partitioned=True) as running:
        yield running


def test_quickstart_runs_with_flwr_run_on_superlink_and_3_supernodes(
    federation: tuple[Processes, Path],
) -> None:
    procs, home = federation
    result_file = home.parent / "result.json"
    # Each ClientApp message starts a fresh process (imports torch): keep the rounds few.
    overrides = (
        f"num-server-rounds={ROUNDS} min-clients={N_NODES} server-lrate=0.1 "
        f'result-file="{result_file}"'
    )
    run = flwr_run(
        [str(EXAMPLE_DIR), CONNECTION, "--stream", "--run-config", overrides],
        procs.env,
        home.parent,
        RUN_TIMEOUT,
    )
    print(f"\nflwr run: {run.wall_s:.1f}s")
    log = run.succeeded()
    procs.check_alive()  # the federation survived the run
    _check_results(result_file, ROUNDS, 0.5, log)


def test_readme_command_trains_quickstart_on_the_local_simulation_superlink(
    tmp_path: Path,
) -> None:
    """The README's `flwr run examples/quickstart --stream --federation-config ...`."""
    result_file = tmp_path / "result.json"
    overrides = f'num-server-rounds={SIM_ROUNDS} result-file="{result_file}"'
    federation_config = "num-supernodes=10 client-resources-num-cpus=1"
    run = flwr_run_local(
        simulation_args(EXAMPLE_DIR, federation_config, overrides), tmp_path, RUN_TIMEOUT
    )
    print(f"\nflwr run: {run.wall_s:.1f}s")
    log = run.succeeded()
    assert "Federation `@none/default` (10 simulated SuperNodes)" in log, log[-5000:]
    _check_results(result_file, SIM_ROUNDS, 0.5, log)
