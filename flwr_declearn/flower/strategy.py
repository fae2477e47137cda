"""`DeclearnStrategy`: declearn-style federated optimization as a Flower Strategy (legacy API)."""

from __future__ import annotations

from logging import INFO, WARNING
from typing import Any, Unpack

import numpy as np
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    log,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from flwr_declearn.flower import protocol, wire
from flwr_declearn.flower._base import (
    EvaluationResult,
    ServerEvaluateFn,
    StrategyBase,
    StrategyOptions,
)
from flwr_declearn.flower._core import ClientUpdate
from flwr_declearn.flower._validation import SpecMismatchError, decode_weights

__all__ = ["DeclearnStrategy", "ServerEvaluateFn"]


class DeclearnStrategy(StrategyBase[Parameters], Strategy):
    """Flower Strategy running declearn-style federated optimization (FedOpt family).

    Each round, every sampled client receives its own FitIns: the global
    weights, the client Optimizer config, the training config and the
    aux-vars the server Optimizer emits for that client. The clients'
    results are checked at the boundary before any state changes (example
    counts, weights vs the global model's names, shapes and dtypes, sizes
    checked before decoding, finite and bounded values, aux-vars per module;
    see `ClientLimits`); a bad client is skipped with one log line. The
    valid results, in client-id order, are combined by the `aggregator`
    (default: the example-weighted mean of `w_global - w_client`, summed in
    float64) into the pseudo-gradient that the server Optimizer applies to
    the trainable weights, after processing the clients' aux-vars as
    `{aux_name: {client_id: aux}}`. Non-trainable weights (e.g. batch-norm
    statistics) are set to the clients' aggregate, never optimized. The
    round runs as a transaction: on any failure (or a non-finite new state)
    the weights and the server Optimizer state are restored and the round
    is skipped.

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
        Number of clients to wait for before sampling (see `round_timeout`).
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
    keep_checkpoints:
        Number of checkpoints kept: `checkpoint_path`, then `checkpoint_path.1`...
    on_checkpoint_error:
        "log" (default): a failed checkpoint write is logged and training goes
        on; "raise": the error ends the run.
    aggregator:
        How client updates are combined: a name registered in
        `flwr_declearn.flower.aggregators` ("mean", "median", "trimmed-mean",
        "clipped-mean"), a `(name, config)` pair or an `Aggregator`.
    limits:
        Bounds on what clients send (`ClientLimits` or its fields as a dict).
    on_round_error:
        "skip" (default) or "fail": what a failed aggregation does (the state
        is restored either way; "fail" then raises an `AggregationError`).
    on_spec_mismatch:
        "skip" (default) or "fail": what a client whose weights do not match
        the model does ("fail" raises a `SpecMismatchError` naming the client
        and the differing names / shapes).
    round_timeout:
        Seconds to wait for `min_available_clients` before sampling (then the
        round goes on with the connected clients); None waits for good (as
        Flower does). The legacy Server's own reply timeout is
        `ServerConfig(round_timeout=...)` (`make_server_app` passes it).
    dp:
        Client-level differential privacy (`server_dp.ServerDP` or its fields
        as a dict: clip_norm, noise_multiplier, delta, seed): clipped updates,
        equal weights, Gaussian noise; the (epsilon, delta) spent is logged and
        returned in the fit metrics ("dp-epsilon", "dp-delta") every round.
    """

    def __init__(
        self,
        *,
        fraction_fit: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_fit_clients: int = 2,
        min_evaluate_clients: int = 2,
        min_available_clients: int = 2,
        **options: Unpack[StrategyOptions],
    ) -> None:
        Strategy.__init__(self)
        StrategyBase.__init__(
            self, {"fraction_fit": fraction_fit, "fraction_evaluate": fraction_evaluate}, **options
        )
        self.fraction_fit = fraction_fit
        self.fraction_evaluate = fraction_evaluate
        self.min_fit_clients = min_fit_clients
        self.min_evaluate_clients = min_evaluate_clients
        self.min_available_clients = min_available_clients

    def __repr__(self) -> str:
        return (
            f"DeclearnStrategy(server_optimizer={self.core.server_optimizer!r}, "
            f"client_optimizer={self.core.client_optimizer!r}, "
            f"train_config={self.core.train_config!r})"
        )

    # -- global state ----------------------------------------------------------------------------

    def global_parameters(self) -> Parameters:
        """Current global weights as Flower Parameters (sorted-name order)."""
        return self._flower_weights()

    def _encode_weights(self) -> Parameters:
        return ndarrays_to_parameters(self.core.get_ndarrays())

    def _decode_weights(self, weights: Parameters) -> list[np.ndarray]:
        return parameters_to_ndarrays(weights)

    def _sample(
        self,
        client_manager: ClientManager,
        fraction: float,
        minimum: int,
        for_training: bool = True,
    ) -> list[ClientProxy]:
        size = self._sample_count(
            client_manager.num_available,
            fraction,
            minimum,
            self.min_available_clients,
            for_training,
        )
        if size < 1:
            return []
        return client_manager.sample(num_clients=size, min_num_clients=size)

    # -- Strategy API ----------------------------------------------------------------------------

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Return the initial (or resumed) global weights."""
        return self.global_parameters()

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Sample clients and give each its own FitIns (config dict and aux-vars)."""
        self._adopt(parameters)
        clients = self._sample(client_manager, self.fraction_fit, self.min_fit_clients)
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
        if not results or self._refuses_failures(rnd, len(failures)):
            return None, {}
        updates = [
            ClientUpdate(
                client_id=str(proxy.cid),
                weights=_decoder(res.parameters, self.core.specs),
                num_examples=res.num_examples,
                aux_var=res.metrics.get(protocol.KEY_AUX_VAR),
                metrics=dict(res.metrics),
            )
            for proxy, res in results
        ]
        metrics = self._aggregate_fit(rnd, updates)
        if metrics is None:
            return None, {}
        return self.global_parameters(), metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """Sample clients for federated evaluation of the global weights."""
        if self.fraction_evaluate == 0.0:
            return []
        self._adopt(parameters)
        clients = self._sample(
            client_manager, self.fraction_evaluate, self.min_evaluate_clients, for_training=False
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
        rnd = self._round(server_round)
        _log_failures(rnd, failures)
        if self._refuses_failures(rnd, len(failures)):
            return None, {}
        return self._aggregate_evaluation(
            rnd,
            [
                EvaluationResult(proxy.cid, res.num_examples, res.loss, res.metrics)
                for proxy, res in results
            ],
        )

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """Run the server-side `evaluate_fn` on the global weights, if any."""
        return self._server_evaluation(server_round, parameters)


def _decoder(parameters: Parameters, specs: wire.WeightSpecs) -> Any:
    """Return a callable decoding `parameters` (sorted-name order) after checking their sizes."""

    def decode() -> dict[str, np.ndarray]:
        tensors = parameters.tensors
        if not isinstance(tensors, list | tuple):
            raise ValueError(f"undecodable weights: tensors are a {type(tensors).__name__}")
        if len(tensors) != len(specs):
            raise SpecMismatchError(
                f"Expected {len(specs)} weight arrays, received {len(tensors)}."
            )
        return decode_weights(dict(zip(sorted(specs), tensors, strict=True)), specs)

    return decode


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
