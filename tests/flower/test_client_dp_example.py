"""The DP-SGD example app runs with `flwr run` (local simulation), logging epsilon per round."""

from __future__ import annotations

import json
from pathlib import Path

import dp_accounting
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("flwr_datasets")

from .test_deployment import (
    _find_processes,
    _flwr_env,
    _flwr_run,
    _free_port,
    _kill_tree,
)

pytestmark = [pytest.mark.slow]

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "dp-sgd"
ROUNDS = 3


def test_dp_sgd_example_logs_epsilon_per_round_as_dp_accounting_computes_it(
    tmp_path: Path,
) -> None:
    env = _flwr_env(tmp_path / "flwr-home")
    http_port, control_port = _free_port(), _free_port()
    env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(http_port)
    env["FLWR_LOCAL_CONTROL_API_PORT"] = str(control_port)
    result_file = tmp_path / "result.json"
    overrides = f'num-server-rounds={ROUNDS} noise-multiplier=1.2 result-file="{result_file}"'
    try:
        log = _flwr_run(
            [
                str(EXAMPLE_DIR),
                "--stream",
                "--federation-config",
                "num-supernodes=2 client-resources-num-cpus=1",
                "--run-config",
                overrides,
            ],
            env,
            tmp_path,
        )
    finally:
        superlinks = _find_processes("flower-superlink", f"--port {http_port} ")
        survivors = _kill_tree(superlinks)
    assert not survivors, f"processes left running after cleanup: {survivors}"
    history = json.loads(result_file.read_text())["rounds"]
    assert [row["round"] for row in history] == list(range(1, ROUNDS + 1)), log[-5000:]
    # 2 IID clients of the 1437 training digits: 718 or 719 samples, batch 32, one epoch of
    # n // 32 + 1 Poisson draws per round, noise multiplier 1.2.
    for row in history:
        assert f"round {row['round']}: DP-SGD (epsilon, delta) = ({row['epsilon']:.3f}" in log
        candidates = []
        for n_samples in (718, 719):
            accountant = dp_accounting.rdp.RdpAccountant()
            event = dp_accounting.PoissonSampledDpEvent(
                32 / n_samples, dp_accounting.GaussianDpEvent(1.2)
            )
            accountant.compose(event, row["round"] * (n_samples // 32 + 1))
            candidates.append(accountant.get_epsilon(1e-5))
        assert row["epsilon"] == pytest.approx(max(candidates), rel=1e-9)
        assert row["delta"] == 1e-5
    assert history[0]["epsilon"] < history[1]["epsilon"] < history[2]["epsilon"]
    assert history[-1]["accuracy"] > 0.5
