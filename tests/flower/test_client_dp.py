"""DP-SGD on DeclearnClient: clipped, noised Poisson steps; (epsilon, delta) across rounds."""

from __future__ import annotations

import logging
from typing import Any

import dp_accounting
import numpy as np
import pytest
from flwr.app import Context

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.flower import STATE_KEY, DeclearnClient, wire
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, _roundtrip_context, make_context, regression_data


def dp_config(std: float, sclip: float = 1.0, **train: Any) -> dict[str, Any]:
    optim = Optimizer(0.05, modules=[("gaussian-noise", {"std": std}), "momentum"])
    return {
        wire.KEY_OPTIMIZER: wire.encode(optim.get_config()),
        wire.KEY_TRAIN_CONFIG: wire.encode(
            {"batch_size": 8, "n_steps": 5, "poisson": True, "sclip": sclip, **train}
        ),
    }


def direct_epsilon(noise: float, rate: float, steps: int, delta: float) -> float:
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise))
    accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


def run_rounds(config: dict[str, Any], n_rounds: int, **client: Any) -> list[dict[str, Any]]:
    context: Context = make_context(1)
    data = regression_data(40, seed=0)
    weights = [np.zeros(1), np.zeros((3, 1))]
    metrics = []
    for _ in range(n_rounds):
        context = _roundtrip_context(context)  # what a SuperNode keeps between messages
        dp_client = DeclearnClient(LinearModel(3), data, context, **client)
        weights, _, met = dp_client.fit(weights, config)
        metrics.append(met)
    return metrics


def test_epsilon_per_round_equals_dp_accounting_and_grows_with_rounds() -> None:
    # 40 samples, batch_size 8: q = 0.2; noise std 0.125 on the mean of 8 expected samples
    # clipped to 1.0 is a noise multiplier of 0.125 * 8 / 1.0 = 1.0.
    metrics = run_rounds(dp_config(std=0.125), n_rounds=3, dp_delta=1e-4)
    epsilons = [met["dp_epsilon"] for met in metrics]
    for rnd, eps in enumerate(epsilons, start=1):
        assert eps == pytest.approx(direct_epsilon(1.0, 0.2, 5 * rnd, 1e-4), rel=1e-12)
    assert epsilons[0] < epsilons[1] < epsilons[2]
    assert all(met["dp_delta"] == 1e-4 for met in metrics)
    assert not any("train_loss" in met for met in metrics)  # not a private output


def test_more_noise_gives_a_smaller_epsilon() -> None:
    figures = [run_rounds(dp_config(std=std), 1)[0]["dp_epsilon"] for std in (0.1, 0.2, 0.5)]
    assert figures[0] > figures[1] > figures[2]
    assert figures[1] == pytest.approx(direct_epsilon(0.2 * 8, 0.2, 5, 1e-5), rel=1e-12)


def test_every_poisson_draw_is_a_step_even_an_empty_one() -> None:
    # batch_size 1 of 40 samples: q = 0.025 and one epoch is 40 draws, many of them empty.
    config = dp_config(std=0.5, batch_size=1, n_steps=None, n_epochs=1)
    (metrics,) = run_rounds(config, 1)
    assert metrics["n_steps"] == 40
    assert metrics["dp_epsilon"] == pytest.approx(direct_epsilon(0.5, 0.025, 40, 1e-5), rel=1e-12)


def test_without_noise_a_full_batch_dp_step_is_the_clipped_mean_step() -> None:
    data = regression_data(40, seed=0)
    start = [np.full(1, 0.5), np.full((3, 1), -1.0)]
    dp = DeclearnClient(LinearModel(3), data, make_context(1))
    new_dp, _, met = dp.fit(start, dp_config(std=0.0, sclip=0.5, batch_size=40, n_steps=3))
    assert met["dp_epsilon"] == float("inf")
    plain = DeclearnClient(LinearModel(3), data, make_context(2))
    optim = Optimizer(0.05, modules=["momentum"])
    config = {
        wire.KEY_OPTIMIZER: wire.encode(optim.get_config()),
        wire.KEY_TRAIN_CONFIG: wire.encode(
            {"batch_size": 40, "n_steps": 3, "sclip": 0.5, "shuffle": False}
        ),
    }
    new_plain, _, _ = plain.fit(start, config)
    for got, exp in zip(new_dp, new_plain, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-12)


def test_the_accountant_lives_in_the_context() -> None:
    context = make_context(1)
    DeclearnClient(LinearModel(3), regression_data(40, 0), context).fit(
        [np.zeros(1), np.zeros((3, 1))], dp_config(std=0.125)
    )
    state = wire.decode(context.state[STATE_KEY]["privacy_accountant"])  # type: ignore[index]
    assert state == {"delta": 1e-5, "events": [[1.0, 0.2, 5]]}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (dp_config(std=0.1, poisson=False), "does not set poisson=True"),
        (
            {
                **dp_config(0.1),
                wire.KEY_OPTIMIZER: wire.encode(
                    Optimizer(0.05, modules=["momentum", "gaussian-noise"]).get_config()
                ),
            },
            "not the first module",
        ),
    ],
)
def test_a_setup_the_accountant_does_not_cover_reports_no_epsilon(
    config: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flwr"):
        (metrics,) = run_rounds(config, 1)
    assert "dp_epsilon" not in metrics
    assert reason in caplog.text


def test_dp_sgd_needs_sample_weights_at_most_one() -> None:
    base = regression_data(40, seed=0)
    data = InMemoryDataset(base.data, base.target, np.full(40, 2.0))
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    with pytest.raises(ValueError, match=r"sample weights in \[0, 1\]"):
        client.fit([np.zeros(1), np.zeros((3, 1))], dp_config(std=0.1))
