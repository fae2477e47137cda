"""`flwr run examples/ilql` on the local simulation SuperLink (5 SuperNodes), short settings.

Checks that the app runs offline end to end (Ray simulation runtime), logs the
decoded policy's expected reward, safe-code rate and mean Q / V every round,
and that the agent improves on behaviour cloning within a few short rounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests._flwr_procs import PROCESS_TEST_MARKS, flwr_run_local, simulation_args

pytestmark = PROCESS_TEST_MARKS

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "ilql"
ROUNDS = 3
RUN_TIMEOUT = 420.0


def test_ilql_example_runs_with_flwr_run_and_logs_policy_scores(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    overrides = (
        f"num-server-rounds={ROUNDS} local-steps=40 episodes-per-client=100 "
        f'algorithm="scaffold" result-file="{result_file}"'
    )
    federation_config = "num-supernodes=5 client-resources-num-cpus=1"
    run = flwr_run_local(
        simulation_args(EXAMPLE_DIR, federation_config, overrides), tmp_path, RUN_TIMEOUT
    )
    print(f"\nflwr run: {run.wall_s:.1f}s")
    log = run.succeeded()
    assert result_file.exists(), log[-5000:]
    history = json.loads(result_file.read_text())["rounds"]
    assert [r["round"] for r in history] == list(range(ROUNDS + 1))
    for key in ("expected_reward", "safe_rate", "q_mean", "v_mean", "bc_expected_reward"):
        assert all(key in r for r in history), key
    print("expected reward by round:", [round(r["expected_reward"], 3) for r in history])
    assert f"round {ROUNDS}: ILQL expected reward" in log, log[-5000:]
    # Values learn from the rewards: mean V moves from ~0 towards the data's returns.
    assert history[-1]["v_mean"] > history[0]["v_mean"] + 0.1
