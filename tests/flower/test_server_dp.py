"""Client-level DP on the server: clipped equal-weight mean, calibrated noise, (epsilon, delta)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

from flwr_declearn.flower import DeclearnClient, DeclearnMessageStrategy, DeclearnStrategy
from flwr_declearn.flower.server_dp import ServerDP
from flwr_declearn.optimizer import Optimizer

from .conftest import (
    LinearModel,
    LocalClientProxy,
    LocalGrid,
    make_context,
    regression_data,
    run_legacy,
)

dp_accounting = pytest.importorskip("dp_accounting")

N_CLIENTS = 4


def client_fn(context: Any) -> DeclearnClient:
    index = int(context.node_config["partition-id"])
    return DeclearnClient(LinearModel(3), regression_data(24, seed=index), context)


def dp_legacy(noise: float, **kwargs: Any) -> DeclearnStrategy:
    return DeclearnStrategy(
        model=LinearModel(3),
        client_optimizer=Optimizer(0.05),
        train_config={"batch_size": 8, "n_steps": 3},
        fraction_fit=0.5,
        min_fit_clients=1,
        min_available_clients=N_CLIENTS,
        fraction_evaluate=0.0,
        dp={"clip_norm": 1.0, "noise_multiplier": noise, "delta": 1e-5, "seed": 7},
        **kwargs,
    )


def proxies() -> list[LocalClientProxy]:
    return [
        LocalClientProxy(str(i + 1), client_fn, make_context(i + 1, i)) for i in range(N_CLIENTS)
    ]


def direct_epsilon(noise: float, rate: float, rounds: int, delta: float = 1e-5) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise))
    accountant.compose(event, rounds)
    return float(accountant.get_epsilon(delta))


def test_epsilon_per_round_matches_dp_accounting_grows_and_shrinks_with_noise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="flwr"):
        history = run_legacy(dp_legacy(1.0), proxies(), num_rounds=3)
    epsilons = [value for _, value in history.metrics_distributed_fit["dp-epsilon"]]
    expected = [direct_epsilon(1.0, 0.5, rounds) for rounds in (1, 2, 3)]
    np.testing.assert_allclose(epsilons, expected, rtol=1e-12)
    assert epsilons[0] < epsilons[1] < epsilons[2]
    assert "round 3: client-level DP spent (epsilon=" in caplog.text
    noisier = run_legacy(dp_legacy(2.0), proxies(), num_rounds=3)
    assert noisier.metrics_distributed_fit["dp-epsilon"][-1][1] < epsilons[-1]


def test_noise_has_the_calibrated_standard_deviation_around_the_clipped_mean() -> None:
    size, noise, clip = 40_000, 0.5, 1.0
    strategy = DeclearnStrategy(
        initial_weights={"w": np.zeros(size)},
        client_optimizer=Optimizer(0.1),
        dp=ServerDP(clip_norm=clip, noise_multiplier=noise, seed=3),
    )
    scales = [0.001, 0.002, 0.01, 0.05]  # update norms 0.2, 0.4, 2, 10: the last two clipped
    results = [
        (
            LocalClientProxy(str(i + 1), client_fn, make_context(i + 1)),
            FitRes(
                Status(Code.OK, ""), ndarrays_to_parameters([np.full(size, s)]), 10 * (i + 1), {}
            ),
        )
        for i, s in enumerate(scales)
    ]
    strategy.aggregate_fit(1, results, [])
    norms = [s * np.sqrt(size) for s in scales]
    clipped = [s * min(1.0, clip / n) for s, n in zip(scales, norms, strict=True)]
    expected = np.mean(clipped)  # equal weights, whatever the example counts
    residual = strategy.global_weights["w"] - expected
    assert abs(residual.mean()) < 5 * noise * clip / 4 / np.sqrt(size)
    np.testing.assert_allclose(residual.std(), noise * clip / len(scales), rtol=0.02)


def test_dp_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="either `dp` or `aggregator`"):
        DeclearnStrategy(
            model=LinearModel(3),
            client_optimizer=Optimizer(0.1),
            aggregator="median",
            dp={"clip_norm": 1.0, "noise_multiplier": 1.0},
        )
    with pytest.raises(ValueError, match="non-trainable ones: \\['input_mean'\\]"):
        DeclearnStrategy(
            model=LinearModel(3, with_stats=True),
            client_optimizer=Optimizer(0.1),
            dp={"clip_norm": 1.0, "noise_multiplier": 1.0},
        )
    with pytest.raises(ValueError, match="clip_norm"):
        ServerDP(clip_norm=0.0, noise_multiplier=1.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        ServerDP(clip_norm=1.0, noise_multiplier=float("nan"))


def test_message_api_reports_epsilon_and_resumes_its_accounting(tmp_path: Path) -> None:
    from flwr_declearn.flower import make_client_app

    path = tmp_path / "dp.ckpt"

    def strategy(**kwargs: Any) -> DeclearnMessageStrategy:
        return DeclearnMessageStrategy(
            model=LinearModel(3),
            client_optimizer=Optimizer(0.05),
            train_config={"batch_size": 8, "n_steps": 3},
            min_train_nodes=N_CLIENTS,
            min_available_nodes=N_CLIENTS,
            fraction_evaluate=0.0,
            dp={"clip_norm": 1.0, "noise_multiplier": 1.2, "seed": 1},
            **kwargs,
        )

    def grid() -> LocalGrid:
        contexts = {n: make_context(n, n - 1) for n in range(1, N_CLIENTS + 1)}
        return LocalGrid(make_client_app(client_fn), contexts)

    def run(strat: DeclearnMessageStrategy, rounds: int) -> Any:
        return strat.start(grid(), num_rounds=rounds)

    result = run(strategy(checkpoint_path=path), 2)
    epsilons = [float(result.train_metrics_clientapp[r]["dp-epsilon"]) for r in (1, 2)]
    np.testing.assert_allclose(epsilons, [direct_epsilon(1.2, 1.0, r, 1e-5) for r in (1, 2)])
    resumed = strategy()
    resumed.load_checkpoint(path)
    assert resumed.privacy_spent == pytest.approx((epsilons[1], 1e-5))
    result = run(resumed, 1)
    assert float(result.train_metrics_clientapp[1]["dp-epsilon"]) == pytest.approx(
        direct_epsilon(1.2, 1.0, 3)
    )
