"""`DeclearnStrategy`: declearn-style federated optimization as a Flower Strategy."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    MetricsAggregationFn,
    Parameters,
    Scalar,
    log,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from flwr_declearn.flower import aggregation, wire
from flwr_declearn.flower._core import ClientUpdate, FederatedCore, build_core
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer import Optimizer

__all__ = ["DeclearnStrategy", "ServerEvaluateFn"]

ServerEvaluateFn = Callable[[int, dict[str, np.ndarray]], tuple[float, dict[str, Scalar]] | None]
"""`(server_round, {name: global weight}) -> (loss, metrics) | None`."""


class DeclearnStrategy(Strategy):
    """Flower Strategy running declearn-style federated optimization (FedOpt family).

    Each round, every sampled client receives its own FitIns: the global
    weights, the client Optimizer config, the training config and the
    aux-vars the server Optimizer emits for that client. The clients'
    results are validated (weights vs the global model's names, shapes and
    dtypes; finite values; aux-var payloads); invalid ones are skipped and
    logged. The weighted average of `w_global - w_client` (weights: example
    counts) is the pseudo-gradient that the server Optimizer applies to the
    trainable weights, after processing the clients' aux-vars as
    `{aux_name: {client_id: aux}}`. Non-trainable weights (e.g. batch-norm
    statistics) are set to the clients' weighted average, never optimized.

    With the default server Optimizer, `Optimizer(lrate=1.0)`, the update is
    the weighted average of the clients' weights: FedAvg.

    Client ids are Flower's `ClientProxy.cid` (`str(node_id)` under the
    SuperLink and the simulation engine), stable across rounds.

    The client Optimizer and training configs travel to a client with its
    first round only; later rounds carry their 8-byte id, and the client
    reads them back from its `context.state`. A client that fails a round
    (e.g. it lost its state) gets them again in its next round, and in every
    round after that if it had already received them once.

    Weights travel as NDArrays in sorted-name order (`wire.weight_names`).

    Parameters
    ----------
    model:
        Initialized Model whose weights (and trainable names) start the training.
    initial_weights:
        Alternatively, the initial named weights (Vector or `{name: array}`).
    trainable:
        With `initial_weights`: names of the trainable weights (default: all).
    client_optimizer:
        The clients' Optimizer, or its config (`Optimizer.get_config()` format).
    server_optimizer:
        The server Optimizer (or config); default `Optimizer(lrate=1.0)` (FedAvg).
    train_config:
        Local training settings (`TrainingConfig` or dict); default one epoch
        with batches of 32.
    eval_config:
        Client evaluation settings (`EvaluationConfig` or dict).
    fraction_fit, fraction_evaluate:
        Fraction of the available clients sampled for training / evaluation.
    min_fit_clients, min_evaluate_clients:
        Minimum number of clients sampled for training / evaluation.
    min_available_clients:
        Number of clients to wait for before sampling.
    evaluate_fn:
        Optional server-side evaluation `(round, {name: weight}) -> (loss, metrics)`.
    fit_metrics_aggregation_fn, evaluate_metrics_aggregation_fn:
        Flower-style metric aggregation functions; default: example-weighted
        average of the numeric metrics (flwr_declearn's own "declearn.*"
        payloads are removed before either is called).
    accept_failures:
        Whether to aggregate rounds in which some clients failed.
    checkpoint_path:
        If set, the server state is saved there after every aggregated round.
    """

    def __init__(
        self,
        *,
        model: Model[Any] | None = None,
        initial_weights: Vector | Mapping[str, Any] | None = None,
        trainable: Collection[str] | None = None,
        client_optimizer: Optimizer | Mapping[str, Any],
        server_optimizer: Optimizer | Mapping[str, Any] | None = None,
        train_config: TrainingConfig | Mapping[str, Any] | None = None,
        eval_config: EvaluationConfig | Mapping[str, Any] | None = None,
        fraction_fit: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_fit_clients: int = 2,
        min_evaluate_clients: int = 2,
        min_available_clients: int = 2,
        evaluate_fn: ServerEvaluateFn | None = None,
        fit_metrics_aggregation_fn: MetricsAggregationFn | None = None,
        evaluate_metrics_aggregation_fn: MetricsAggregationFn | None = None,
        accept_failures: bool = True,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.core: FederatedCore = build_core(
            model=model,
            initial_weights=initial_weights,
            trainable=trainable,
            client_optimizer=client_optimizer,
            server_optimizer=server_optimizer,
            train_config=train_config,
            eval_config=eval_config,
        )
        _check_fraction("fraction_fit", fraction_fit)
        _check_fraction("fraction_evaluate", fraction_evaluate)
        self.fraction_fit = fraction_fit
        self.fraction_evaluate = fraction_evaluate
        self.min_fit_clients = min_fit_clients
        self.min_evaluate_clients = min_evaluate_clients
        self.min_available_clients = min_available_clients
        self.evaluate_fn = evaluate_fn
        self.fit_metrics_aggregation_fn = fit_metrics_aggregation_fn
        self.evaluate_metrics_aggregation_fn = evaluate_metrics_aggregation_fn
        self.accept_failures = accept_failures
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self._round_offset = 0
        self._parameters: Parameters | None = None

    def __repr__(self) -> str:
        return (
            f"DeclearnStrategy(server_optimizer={self.core.server_optimizer!r}, "
            f"client_optimizer={self.core.client_optimizer!r}, "
            f"train_config={self.core.train_config!r})"
        )

    # -- global state ----------------------------------------------------------------------------

    @property
    def global_weights(self) -> dict[str, np.ndarray]:
        """Current global weights, by name (do not modify in place)."""
        return self.core.get_weights()

    def global_parameters(self) -> Parameters:
        """Current global weights as Flower Parameters (sorted-name order)."""
        if self._parameters is None:
            self._parameters = ndarrays_to_parameters(self.core.get_ndarrays())
        return self._parameters

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the server state (weights, server Optimizer state, round) to an npz file.

        Parameters
        ----------
        path:
            Destination; defaults to `checkpoint_path`.
        """
        target = path if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("No checkpoint path: pass `path` or set `checkpoint_path`.")
        return self.core.save_checkpoint(target)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint: the next Flower round continues its round count."""
        self.core.load_checkpoint(path)
        self._round_offset = self.core.server_round
        self._parameters = None

    def _round(self, server_round: int) -> int:
        return self._round_offset + server_round

    def _adopt(self, parameters: Parameters) -> None:
        """Make `parameters` the global weights if they are not the ones we produced."""
        if parameters is self._parameters:
            return
        self.core.set_weights(parameters_to_ndarrays(parameters))
        self._parameters = parameters

    # -- Strategy API ----------------------------------------------------------------------------

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Return the initial (or resumed) global weights."""
        return self.global_parameters()

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Sample clients and give each its own FitIns (config dict and aux-vars)."""
        self._adopt(parameters)
        n_clients = max(
            int(client_manager.num_available() * self.fraction_fit), self.min_fit_clients
        )
        clients = client_manager.sample(
            num_clients=n_clients, min_num_clients=self.min_available_clients
        )
        if not clients:
            return []
        configs = self.core.fit_configs(self._round(server_round), [c.cid for c in clients])
        return [(client, FitIns(parameters, configs[client.cid])) for client in clients]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Validate the results, run the server Optimizer, return new weights and metrics."""
        rnd = self._round(server_round)
        _log_failures(rnd, failures)
        self.core.note_responses(proxy.cid for proxy, _ in results)
        if not results:
            return None, {}
        if failures and not self.accept_failures:
            log(WARNING, "flwr_declearn: round %s: failures occurred; not aggregating.", rnd)
            return None, {}
        updates: list[ClientUpdate] = []
        for proxy, res in results:
            try:
                arrays = parameters_to_ndarrays(res.parameters)
            except Exception as exc:  # any undecodable payload skips the client
                log(
                    WARNING,
                    "flwr_declearn: round %s: skipping client %s: undecodable weights: %s",
                    rnd,
                    proxy.cid,
                    exc,
                )
                continue
            updates.append(
                ClientUpdate(
                    client_id=proxy.cid,
                    weights=arrays,
                    num_examples=res.num_examples,
                    aux_var=res.metrics.get(wire.KEY_AUX_VAR),
                    metrics=_public_metrics(res.metrics),
                )
            )
        accepted = set(self.core.aggregate(rnd, updates))
        if not accepted:
            return None, {}
        self._parameters = ndarrays_to_parameters(self.core.get_ndarrays())
        if self.checkpoint_path is not None:
            self.core.save_checkpoint(self.checkpoint_path)
        fit_metrics = [
            (upd.num_examples, upd.metrics) for upd in updates if upd.client_id in accepted
        ]
        if self.fit_metrics_aggregation_fn is not None:
            metrics = self.fit_metrics_aggregation_fn(fit_metrics)
        else:
            metrics = dict(aggregation.weighted_metrics(fit_metrics))
        return self._parameters, metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """Sample clients for federated evaluation of the global weights."""
        if self.fraction_evaluate == 0.0:
            return []
        self._adopt(parameters)
        n_clients = max(
            int(client_manager.num_available() * self.fraction_evaluate),
            self.min_evaluate_clients,
        )
        clients = client_manager.sample(
            num_clients=n_clients, min_num_clients=self.min_available_clients
        )
        rnd = self._round(server_round)
        return [
            (client, EvaluateIns(parameters, self.core.evaluate_config(rnd))) for client in clients
        ]

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Average the clients' losses and metrics, weighted by their example counts."""
        _log_failures(self._round(server_round), failures)
        results = [(proxy, res) for proxy, res in results if res.num_examples > 0]
        if not results or (failures and not self.accept_failures):
            return None, {}
        total = sum(res.num_examples for _, res in results)
        loss = sum(res.num_examples * res.loss for _, res in results) / total
        eval_metrics = [(res.num_examples, _public_metrics(res.metrics)) for _, res in results]
        if self.evaluate_metrics_aggregation_fn is not None:
            metrics = self.evaluate_metrics_aggregation_fn(eval_metrics)
        else:
            metrics = dict(aggregation.weighted_metrics(eval_metrics))
        return float(loss), metrics

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """Run the server-side `evaluate_fn` on the global weights, if any."""
        if self.evaluate_fn is None:
            return None
        self._adopt(parameters)
        return self.evaluate_fn(self._round(server_round), self.core.get_weights())


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"'{name}' must lie in [0, 1], not {value!r}.")


def _public_metrics(metrics: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """Drop flwr_declearn's internal "declearn.*" entries from client metrics."""
    return {key: val for key, val in metrics.items() if not key.startswith("declearn.")}


def _log_failures(server_round: int, failures: list[Any]) -> None:
    for failure in failures:
        if isinstance(failure, BaseException):
            log(WARNING, "flwr_declearn: round %s: a client failed: %r", server_round, failure)
        else:
            proxy, res = failure
            log(
                WARNING,
                "flwr_declearn: round %s: client %s failed: %s",
                server_round,
                proxy.cid,
                getattr(res, "status", res),
            )
    if failures:
        log(INFO, "flwr_declearn: round %s: %d failure(s).", server_round, len(failures))
