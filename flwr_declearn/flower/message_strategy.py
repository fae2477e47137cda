"""`DeclearnMessageStrategy`: the declearn-style strategy on Flower's Message API."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from logging import INFO, WARNING
from typing import Any, Unpack

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    ConfigRecordValues,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy

from flwr_declearn.flower import protocol, wire
from flwr_declearn.flower._base import EvaluationResult, StrategyBase, StrategyOptions
from flwr_declearn.flower._core import ClientUpdate
from flwr_declearn.flower._records import arrays_to_record, get_record, record_to_arrays
from flwr_declearn.flower._validation import decode_weights

__all__ = ["DeclearnMessageStrategy"]


class DeclearnMessageStrategy(StrategyBase[ArrayRecord], Strategy):
    """Declearn-style federated optimization as a Flower Message API strategy.

    Same algorithm, checks and transaction as `DeclearnStrategy` (see its
    documentation), exchanged as `flwr.app` records (layout in
    `flwr_declearn.flower.protocol`): the global weights in an ArrayRecord
    keyed by weight name, configs and aux-vars as bytes in ConfigRecords,
    metrics in MetricRecords. Client ids are `str(node_id)` of the replying
    nodes; a node's second reply in a round is dropped.

    Run it with `strategy.start(grid, num_rounds=...)`, or through
    `make_server_app`.

    Parameters
    ----------
    model, initial_weights, trainable, client_optimizer, server_optimizer,
    train_config, eval_config, evaluate_fn, fit_metrics_aggregation_fn,
    evaluate_metrics_aggregation_fn, accept_failures, checkpoint_path,
    keep_checkpoints, on_checkpoint_error, aggregator, limits, on_round_error,
    on_spec_mismatch, dp:
        As for `DeclearnStrategy`; `evaluate_fn` is called by `start` before
        the first round and after every round, its results recorded as
        `{"loss": loss, **metrics}`.
    fraction_train, fraction_evaluate:
        Fraction of the connected nodes sampled for training / evaluation.
    min_train_nodes, min_evaluate_nodes:
        Minimum number of nodes sampled for training / evaluation.
    min_available_nodes:
        Number of nodes to wait for before sampling. The wait lasts at most
        `round_timeout`; then the round goes on with the connected nodes.
    round_timeout:
        Seconds to wait for the nodes' replies in each round (passed to the
        Grid's `send_and_receive` by `start`; the replies received by then
        are aggregated), and at most for `min_available_nodes`; None: one
        hour for replies and no limit for availability, as in Flower.
    """

    def __init__(
        self,
        *,
        fraction_train: float = 1.0,
        fraction_evaluate: float = 1.0,
        min_train_nodes: int = 2,
        min_evaluate_nodes: int = 2,
        min_available_nodes: int = 2,
        **options: Unpack[StrategyOptions],
    ) -> None:
        StrategyBase.__init__(
            self,
            {"fraction_train": fraction_train, "fraction_evaluate": fraction_evaluate},
            **options,
        )
        self.fraction_train = fraction_train
        self.fraction_evaluate = fraction_evaluate
        self.min_train_nodes = min_train_nodes
        self.min_evaluate_nodes = min_evaluate_nodes
        self.min_available_nodes = min_available_nodes

    # -- global state ----------------------------------------------------------------------------

    def global_arrays(self) -> ArrayRecord:
        """Current global weights as an ArrayRecord keyed by weight name."""
        return self._flower_weights()

    def _encode_weights(self) -> ArrayRecord:
        return arrays_to_record(self.core.get_weights())

    def _decode_weights(self, weights: ArrayRecord) -> dict[str, np.ndarray]:
        return record_to_arrays(weights)

    def _sort_replies(
        self, server_round: int, replies: Iterable[Message], task: str
    ) -> tuple[list[Message], bool]:
        """Log the failed replies; return the others and whether the failures stop the round."""
        replies = list(replies)
        failed = [msg for msg in replies if msg.has_error()]
        for msg in failed:
            log(
                WARNING,
                "flwr_declearn: round %s: node %s failed %s: %s",
                server_round,
                msg.metadata.src_node_id,
                task,
                msg.error.reason,
            )
        good = [msg for msg in replies if not msg.has_error()]
        return good, self._refuses_failures(server_round, len(failed))

    def _select(
        self,
        arrays: ArrayRecord,
        grid: Grid,
        fraction: float,
        minimum: int,
        for_training: bool = True,
    ) -> list[int]:
        """Adopt `arrays` and sample the round's nodes (none at `fraction` 0, as in Flower)."""
        if fraction == 0.0:
            return []
        self._adopt(arrays)
        size = self._sample_count(
            lambda: len(list(grid.get_node_ids())),
            fraction,
            minimum,
            self.min_available_nodes,
            for_training,
        )
        return random.sample(list(grid.get_node_ids()), size)

    def _messages(
        self,
        node_ids: Iterable[int],
        arrays: ArrayRecord,
        configs: Mapping[int, Mapping[str, ConfigRecordValues]],
        message_type: str,
    ) -> list[Message]:
        # Nodes sent the same config share one RecordDict, as Flower's own strategies share theirs:
        # building (and hashing, on the way out) one record per node costs ~10x Flower's round.
        contents: dict[tuple[tuple[str, Any], ...], RecordDict] = {}
        messages = []
        for node_id in node_ids:
            config = configs[node_id]
            items = config.items()
            key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in items))
            if key not in contents:
                contents[key] = RecordDict(
                    {
                        protocol.ARRAYS_KEY: arrays,
                        protocol.CONFIG_KEY: ConfigRecord(dict(config)),
                    }
                )
            messages.append(
                Message(content=contents[key], message_type=message_type, dst_node_id=node_id)
            )
        return messages

    # -- Strategy API ----------------------------------------------------------------------------

    def summary(self) -> None:
        """Log the strategy's configuration."""
        log(INFO, "\t├──> DeclearnMessageStrategy")
        log(INFO, "\t│\t├── server optimizer: %s", self.core.server_optimizer.get_config())
        log(INFO, "\t│\t├── client optimizer: %s", self.core.client_optimizer)
        log(INFO, "\t│\t├── aggregator: %r", self.core.aggregator)
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
        node_ids = self._select(arrays, grid, self.fraction_train, self.min_train_nodes)
        if not node_ids:
            return []
        per_client = self.core.fit_configs(self._round(server_round), [str(n) for n in node_ids])
        configs = {node: {**config, **per_client[str(node)]} for node in node_ids}
        return self._messages(node_ids, arrays, configs, MessageType.TRAIN)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Validate the replies, run the server Optimizer, return new weights and metrics."""
        rnd = self._round(server_round)
        replies = list(replies)
        log(INFO, "flwr_declearn: round %s: %d train repl(ies) received.", rnd, len(replies))
        good, refused = self._sort_replies(rnd, replies, "training")
        self.core.note_responses(str(msg.metadata.src_node_id) for msg in good)
        if refused:
            return None, None
        updates = [
            _train_update(str(msg.metadata.src_node_id), msg.content, self.core.specs)
            for msg in good
        ]
        metrics = self._aggregate_fit(rnd, updates) if updates else None
        if metrics is None:
            return None, None
        return self.global_arrays(), _metric_record(metrics)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample nodes and build one evaluate Message per node."""
        node_ids = self._select(
            arrays, grid, self.fraction_evaluate, self.min_evaluate_nodes, for_training=False
        )
        eval_config = self.core.evaluate_config(self._round(server_round))
        configs = {node: {**config, **eval_config} for node in node_ids}
        return self._messages(node_ids, arrays, configs, MessageType.EVALUATE)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Average the nodes' evaluation metrics, weighted by their example counts."""
        rnd = self._round(server_round)
        good, refused = self._sort_replies(rnd, replies, "evaluation")
        if refused:
            return None
        _, averaged = self._aggregate_evaluation(
            rnd, [_evaluation_result(str(msg.metadata.src_node_id), msg.content) for msg in good]
        )
        record = _metric_record(averaged)
        return record if record else None

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord | None = None,
        num_rounds: int = 3,
        timeout: float | None = None,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Run `num_rounds` rounds (see Flower's `Strategy.start`).

        `initial_arrays` defaults to the strategy's global weights. It may be
        keyed by weight name (`global_weights`; a TorchModel's are its
        `state_dict` keys, so `ArrayRecord(net.state_dict())` fits), or be
        Flower's positional record of every weight in model order (keys "0",
        "1", ..., as `ArrayRecord(list_of_ndarrays)` gives), checked against
        the model's shapes. `timeout` defaults to `round_timeout` (else one
        hour), and `evaluate_fn` to an adapter of the strategy's own
        `evaluate_fn`.

        Raises
        ------
        ValueError
            If `initial_arrays` is neither, naming what to pass.
        """
        if evaluate_fn is None and self.evaluate_fn is not None:
            evaluate_fn = self._evaluate_arrays
        if timeout is None:
            timeout = 3600.0 if self.round_timeout is None else self.round_timeout
        return super().start(
            grid,
            self.global_arrays() if initial_arrays is None else self._named(initial_arrays),
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
        )

    def _named(self, arrays: ArrayRecord) -> ArrayRecord:
        """`arrays` keyed by weight name: as given, or mapped from Flower's positional keys."""
        model = self.core.get_weights()  # in model order
        names, keys = list(model), list(arrays.keys())
        if set(keys) == set(names):
            return arrays
        what = (
            f"initial_arrays must be keyed by the model's weight names {names} (see "
            "`strategy.global_weights`; for a TorchModel, the module's state_dict keys: "
            f"ArrayRecord(net.state_dict())), or hold its {len(names)} weights in model order "
            'with keys "0", "1", ... (ArrayRecord(list_of_ndarrays))'
        )
        if keys != [str(i) for i in range(len(keys))]:
            raise ValueError(f"{what}; got keys {keys}.")
        if len(keys) != len(names):
            raise ValueError(f"{what}; got {len(keys)} positional arrays.")
        shapes = [tuple(arrays[key].shape) for key in keys]
        wrong = [
            f'"{key}" {shape} for {name} {model[name].shape}'
            for key, shape, name in zip(keys, shapes, names, strict=True)
            if shape != model[name].shape
        ]
        if wrong:
            raise ValueError(f"{what}; shapes differ: {', '.join(wrong)}.")
        return ArrayRecord({name: arrays[key] for key, name in zip(keys, names, strict=True)})

    def _evaluate_arrays(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        result = self._server_evaluation(server_round, arrays)
        if result is None:
            return None
        loss, metrics = result
        return _metric_record({**metrics, protocol.LOSS_KEY: float(loss)})


def _metric_record(values: Mapping[str, Any]) -> MetricRecord:
    return MetricRecord({key: float(val) for key, val in values.items() if _is_number(val)})  # type: ignore[misc]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _read_metrics(content: RecordDict) -> tuple[Any, dict[str, Any], str | None]:
    """Return a reply's example count, its other metrics, and why they are unreadable if so."""
    try:
        metrics: dict[str, Any] = dict(get_record(content, protocol.METRICS_KEY, MetricRecord))
    except ValueError as exc:
        return None, {}, str(exc)
    return metrics.pop(protocol.NUM_EXAMPLES_KEY, None), metrics, None


def _evaluation_result(cid: str, content: RecordDict) -> EvaluationResult:
    count, metrics, fault = _read_metrics(content)
    return EvaluationResult(cid, count, None, metrics, fault)


def _train_update(cid: str, content: RecordDict, specs: wire.WeightSpecs) -> ClientUpdate:
    """Read a train reply lazily: weights are decoded when the core asks, after size checks."""
    count, metrics, fault = _read_metrics(content)
    aux: Any = None
    if protocol.DECLEARN_KEY in content:
        record = content[protocol.DECLEARN_KEY]
        aux = record.get(protocol.KEY_AUX_VAR) if isinstance(record, ConfigRecord) else record

    def weights() -> dict[str, np.ndarray]:
        return _record_to_checked_arrays(
            get_record(content, protocol.ARRAYS_KEY, ArrayRecord), specs
        )

    return ClientUpdate(cid, weights, count, aux, metrics, fault)


def _record_to_checked_arrays(
    record: ArrayRecord, specs: wire.WeightSpecs
) -> dict[str, np.ndarray]:
    """Decode an ArrayRecord of named weights, checking names and sizes before decoding."""
    for name, array in record.items():
        if not isinstance(array, Array) or array.stype != "numpy.ndarray":
            raise ValueError(f"'{name}' is not a numpy-serialized array")
    return decode_weights({name: array.data for name, array in record.items()}, specs)
