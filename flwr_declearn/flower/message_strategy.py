"""`DeclearnMessageStrategy`: the declearn-style strategy on Flower's Message API."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    ConfigRecordValues,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.common import Scalar, log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from flwr_declearn.flower import aggregation, wire
from flwr_declearn.flower._core import ClientUpdate, FederatedCore, build_core
from flwr_declearn.flower._records import (
    ARRAYS_KEY,
    CONFIG_KEY,
    DECLEARN_KEY,
    METRICS_KEY,
    NUM_EXAMPLES_KEY,
    arrays_to_record,
    get_record,
    record_to_arrays,
)
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.strategy import ServerEvaluateFn
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer import Optimizer

__all__ = ["DeclearnMessageStrategy"]


class DeclearnMessageStrategy(Strategy):
    """Declearn-style federated optimization as a Flower Message API strategy.

    Same algorithm as `DeclearnStrategy` (see its documentation), exchanged
    as `flwr.app` records (layout in `flwr_declearn.flower._records`): the
    global weights in an ArrayRecord keyed by weight name, configs and
    aux-vars as bytes in ConfigRecords, metrics in MetricRecords. Client ids
    are `str(node_id)` of the replying nodes.

    Run it with `strategy.start(grid, strategy.global_arrays(), num_rounds)`,
    or through `make_server_app`.

    Parameters
    ----------
    model, initial_weights, trainable, client_optimizer, server_optimizer,
    train_config, eval_config, checkpoint_path:
        As for `DeclearnStrategy`.
    fraction_train, fraction_evaluate:
        Fraction of the connected nodes sampled for training / evaluation.
    min_train_nodes, min_evaluate_nodes:
        Minimum number of nodes sampled for training / evaluation.
    min_available_nodes:
        Number of nodes to wait for before sampling.
    evaluate_fn:
        Optional server-side evaluation `(round, {name: weight}) -> (loss, metrics)`
        (e.g. a `ModelEvaluator`), called by `start` before the first round and
        after every round; its results are recorded as `{"loss": loss, **metrics}`.
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
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        evaluate_fn: ServerEvaluateFn | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.core: FederatedCore = build_core(
            model=model,
            initial_weights=initial_weights,
            trainable=trainable,
            client_optimizer=client_optimizer,
            server_optimizer=server_optimizer,
            train_config=train_config,
            eval_config=eval_config,
        )
        for name, value in (
            ("fraction_train", fraction_train),
            ("fraction_evaluate", fraction_evaluate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"'{name}' must lie in [0, 1], not {value!r}.")
        self.fraction_train = fraction_train
        self.fraction_evaluate = fraction_evaluate
        self.min_train_nodes = min_train_nodes
        self.min_evaluate_nodes = min_evaluate_nodes
        self.min_available_nodes = min_available_nodes
        self.evaluate_fn = evaluate_fn
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self._round_offset = 0
        self._arrays: ArrayRecord | None = None

    # -- global state ----------------------------------------------------------------------------

    @property
    def global_weights(self) -> dict[str, np.ndarray]:
        """Current global weights, by name (do not modify in place)."""
        return self.core.get_weights()

    def global_arrays(self) -> ArrayRecord:
        """Current global weights as an ArrayRecord keyed by weight name."""
        if self._arrays is None:
            self._arrays = arrays_to_record(self.core.get_weights())
        return self._arrays

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the server state to an npz file (default: `checkpoint_path`)."""
        target = path if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("No checkpoint path: pass `path` or set `checkpoint_path`.")
        return self.core.save_checkpoint(target)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint: the next round continues its round count."""
        self.core.load_checkpoint(path)
        self._round_offset = self.core.server_round
        self._arrays = None

    def _adopt(self, arrays: ArrayRecord) -> None:
        if arrays is self._arrays:
            return
        self.core.set_weights(record_to_arrays(arrays))
        self._arrays = arrays

    def _messages(
        self,
        node_ids: Iterable[int],
        arrays: ArrayRecord,
        configs: Mapping[int, Mapping[str, ConfigRecordValues]],
        message_type: str,
    ) -> list[Message]:
        return [
            Message(
                content=RecordDict(
                    {ARRAYS_KEY: arrays, CONFIG_KEY: ConfigRecord(dict(configs[node_id]))}
                ),
                message_type=message_type,
                dst_node_id=node_id,
            )
            for node_id in node_ids
        ]

    # -- Strategy API ----------------------------------------------------------------------------

    def summary(self) -> None:
        """Log the strategy's configuration."""
        log(INFO, "\t├──> DeclearnMessageStrategy")
        log(INFO, "\t│\t├── server optimizer: %s", self.core.server_optimizer.get_config())
        log(INFO, "\t│\t├── client optimizer: %s", self.core.client_optimizer)
        log(INFO, "\t│\t└── training: %s", self.core.train_config)
        log(
            INFO,
            "\t└──> Sampling: train %.2f (min %d) | evaluate %.2f (min %d) | available %d",
            self.fraction_train,
            self.min_train_nodes,
            self.fraction_evaluate,
            self.min_evaluate_nodes,
            self.min_available_nodes,
        )

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample nodes and build one train Message per node, with its own config and aux-vars."""
        if self.fraction_train == 0.0:
            return []
        self._adopt(arrays)
        sample_size = max(
            int(len(list(grid.get_node_ids())) * self.fraction_train), self.min_train_nodes
        )
        node_ids, _ = sample_nodes(grid, self.min_available_nodes, sample_size)
        rnd = self._round_offset + server_round
        per_client = self.core.fit_configs(rnd, [str(node) for node in node_ids])
        configs = {node: {**config, **per_client[str(node)]} for node in node_ids}
        return self._messages(node_ids, arrays, configs, MessageType.TRAIN)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate the replies, run the server Optimizer, return new weights and metrics."""
        rnd = self._round_offset + server_round
        replies = list(replies)
        self.core.note_responses(
            str(msg.metadata.src_node_id) for msg in replies if not msg.has_error()
        )
        updates: list[ClientUpdate] = []
        for msg in replies:
            cid = str(msg.metadata.src_node_id)
            if msg.has_error():
                log(
                    WARNING,
                    "flwr_declearn: round %s: node %s failed: %s",
                    rnd,
                    cid,
                    msg.error.reason,
                )
                continue
            try:
                updates.append(_train_update(cid, msg.content))
            except ValueError as exc:
                log(WARNING, "flwr_declearn: round %s: skipping node %s: %s", rnd, cid, exc)
        accepted = set(self.core.aggregate(rnd, updates)) if updates else set()
        if not accepted:
            return None, None
        self._arrays = arrays_to_record(self.core.get_weights())
        if self.checkpoint_path is not None:
            self.core.save_checkpoint(self.checkpoint_path)
        metrics = aggregation.weighted_metrics(
            [(upd.num_examples, upd.metrics) for upd in updates if upd.client_id in accepted]
        )
        return self._arrays, _metric_record(metrics)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample nodes and build one evaluate Message per node."""
        if self.fraction_evaluate == 0.0:
            return []
        self._adopt(arrays)
        sample_size = max(
            int(len(list(grid.get_node_ids())) * self.fraction_evaluate),
            self.min_evaluate_nodes,
        )
        node_ids, _ = sample_nodes(grid, self.min_available_nodes, sample_size)
        eval_config = self.core.evaluate_config(self._round_offset + server_round)
        configs = {node: {**config, **eval_config} for node in node_ids}
        return self._messages(node_ids, arrays, configs, MessageType.EVALUATE)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Average the nodes' evaluation metrics, weighted by their example counts."""
        rnd = self._round_offset + server_round
        results: list[tuple[int, dict[str, Any]]] = []
        for msg in replies:
            cid = str(msg.metadata.src_node_id)
            if msg.has_error():
                log(
                    WARNING,
                    "flwr_declearn: round %s: node %s failed evaluation: %s",
                    rnd,
                    cid,
                    msg.error.reason,
                )
                continue
            try:
                metrics = dict(get_record(msg.content, METRICS_KEY, MetricRecord))
                count = _num_examples(metrics)
            except ValueError as exc:
                log(
                    WARNING,
                    "flwr_declearn: round %s: skipping evaluation of node %s: %s",
                    rnd,
                    cid,
                    exc,
                )
                continue
            results.append((count, metrics))
        averaged = aggregation.weighted_metrics(
            [(n, {k: v for k, v in m.items() if k != NUM_EXAMPLES_KEY}) for n, m in results]
        )
        return _metric_record(averaged) if averaged else None

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord | None = None,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run `num_rounds` rounds (see Flower's `Strategy.start`).

        `initial_arrays` defaults to the strategy's global weights, and
        `evaluate_fn` to an adapter of the strategy's own `evaluate_fn`.
        """
        if evaluate_fn is None and self.evaluate_fn is not None:
            evaluate_fn = self._evaluate_arrays
        return super().start(
            grid,
            self.global_arrays() if initial_arrays is None else initial_arrays,
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
        )

    def _evaluate_arrays(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        assert self.evaluate_fn is not None
        self._adopt(arrays)
        result = self.evaluate_fn(self._round_offset + server_round, self.core.get_weights())
        if result is None:
            return None
        loss, metrics = result
        record = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        record["loss"] = float(loss)
        return _metric_record(record)


def _metric_record(values: Mapping[str, float]) -> MetricRecord:
    return MetricRecord({key: float(val) for key, val in values.items()})  # type: ignore[misc]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _num_examples(metrics: Mapping[str, Any]) -> int:
    count = metrics.get(NUM_EXAMPLES_KEY)
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"'{NUM_EXAMPLES_KEY}' must be a non-negative int, not {count!r}")
    return count


def _train_update(cid: str, content: RecordDict) -> ClientUpdate:
    arrays = record_to_arrays(get_record(content, ARRAYS_KEY, ArrayRecord))
    metrics = dict(get_record(content, METRICS_KEY, MetricRecord))
    count = _num_examples(metrics)
    aux: Scalar | None = None
    if DECLEARN_KEY in content:
        aux = get_record(content, DECLEARN_KEY, ConfigRecord).get(wire.KEY_AUX_VAR)  # type: ignore[assignment]
    public = {k: v for k, v in metrics.items() if k != NUM_EXAMPLES_KEY}
    return ClientUpdate(cid, arrays, count, aux, public)  # type: ignore[arg-type]
