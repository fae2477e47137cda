"""Deterministic aggregation: arrival order does not matter; a resumed run is bit-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flwr_declearn.flower import DeclearnClient, DeclearnMessageStrategy, DeclearnStrategy, wire
from flwr_declearn.flower.apps import make_client_app, make_server_app
from flwr_declearn.optimizer import Optimizer

from .conftest import (
    LinearModel,
    LocalClientProxy,
    LocalGrid,
    make_context,
    regression_data,
    run_legacy,
    server_context,
)

N_CLIENTS = 4
TRAIN = {"batch_size": 8, "n_steps": 4, "shuffle": True}


def options(**kwargs: Any) -> dict[str, Any]:
    return {
        "model": LinearModel(3, dtype="float32"),
        "client_optimizer": Optimizer(0.05, modules=["scaffold-client"]),
        "server_optimizer": Optimizer(0.3, modules=["scaffold-server", "adam"]),
        "train_config": TRAIN,
        "fraction_evaluate": 0.0,
        **kwargs,
    }


def client_fn(context: Any) -> DeclearnClient:
    index = int(context.node_config["partition-id"])
    data = regression_data(20 + 7 * index, seed=index, shift=float(index))
    return DeclearnClient(LinearModel(3, dtype="float32"), data, context)


def state_bytes(strategy: Any) -> bytes:
    core = strategy.core
    return wire.encode([core.get_weights(), core.server_optimizer.get_state(), core.server_round])


class ReversedLegacy(DeclearnStrategy):
    """Sees every round's results in reverse arrival order."""

    def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
        return super().aggregate_fit(server_round, list(reversed(results)), failures)


class ReversedMessage(DeclearnMessageStrategy):
    def aggregate_train(self, server_round: int, replies: Any) -> Any:
        return super().aggregate_train(server_round, list(reversed(list(replies))))


def legacy_proxies() -> list[LocalClientProxy]:
    return [
        LocalClientProxy(str(i + 1), client_fn, make_context(i + 1, i)) for i in range(N_CLIENTS)
    ]


def legacy_kwargs(**kwargs: Any) -> dict[str, Any]:
    return options(
        min_fit_clients=N_CLIENTS, min_available_clients=N_CLIENTS, min_evaluate_clients=0, **kwargs
    )


def message_kwargs(**kwargs: Any) -> dict[str, Any]:
    return options(
        min_train_nodes=N_CLIENTS, min_available_nodes=N_CLIENTS, min_evaluate_nodes=0, **kwargs
    )


def make_grid() -> LocalGrid:
    contexts = {n: make_context(n, n - 1) for n in range(1, N_CLIENTS + 1)}
    return LocalGrid(make_client_app(client_fn), contexts)


def run_message(strategy: Any, grid: LocalGrid, rounds: int) -> Any:
    make_server_app(lambda _: strategy, num_rounds=rounds)(grid, server_context())
    return strategy


def test_legacy_rounds_do_not_depend_on_the_order_results_arrive_in() -> None:
    first = DeclearnStrategy(**legacy_kwargs())
    second = ReversedLegacy(**legacy_kwargs())
    run_legacy(first, legacy_proxies(), num_rounds=4)
    run_legacy(second, legacy_proxies(), num_rounds=4)
    assert first.core.server_round == 4
    assert state_bytes(first) == state_bytes(second)


def test_message_rounds_do_not_depend_on_the_order_replies_arrive_in() -> None:
    first = run_message(DeclearnMessageStrategy(**message_kwargs()), make_grid(), 4)
    second = run_message(ReversedMessage(**message_kwargs()), make_grid(), 4)
    assert first.core.server_round == 4
    assert state_bytes(first) == state_bytes(second)


def test_legacy_stop_after_round_3_and_resume_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    straight = DeclearnStrategy(**legacy_kwargs())
    run_legacy(straight, legacy_proxies(), num_rounds=6)
    path = tmp_path / "server.ckpt"
    proxies = legacy_proxies()
    run_legacy(DeclearnStrategy(**legacy_kwargs(checkpoint_path=path)), proxies, num_rounds=3)
    resumed = DeclearnStrategy(**legacy_kwargs())
    resumed.load_checkpoint(path)
    run_legacy(resumed, proxies, num_rounds=3)
    assert resumed.core.server_round == 6
    assert state_bytes(resumed) == state_bytes(straight)
    assert np.abs(straight.global_weights["kernel"]).max() > 0.1


def test_message_stop_after_round_3_and_resume_equals_the_uninterrupted_run(
    tmp_path: Path,
) -> None:
    straight = run_message(DeclearnMessageStrategy(**message_kwargs()), make_grid(), 6)
    path = tmp_path / "server.ckpt"
    grid = make_grid()
    run_message(DeclearnMessageStrategy(**message_kwargs(checkpoint_path=path)), grid, 3)
    resumed = DeclearnMessageStrategy(**message_kwargs())
    resumed.load_checkpoint(path)
    run_message(resumed, grid, 3)
    assert resumed.core.server_round == 6
    assert state_bytes(resumed) == state_bytes(straight)
