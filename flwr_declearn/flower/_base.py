"""What the legacy and the Message API strategies share; each subclass adds its API's glue."""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from logging import INFO, WARNING
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, Required, TypedDict, TypeVar, Unpack

import numpy as np
from flwr.common import MetricsAggregationFn, Scalar, log

from flwr_declearn.flower import aggregation, protocol
from flwr_declearn.flower._core import (
    ClientUpdate,
    ErrorPolicy,
    FederatedCore,
    WeightsPayload,
    build_core,
    client_order,
)
from flwr_declearn.flower._validation import ClientLimits
from flwr_declearn.flower.aggregators import Aggregator
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.server_dp import ServerDP
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer import Optimizer

__all__ = ["EvaluationResult", "ServerEvaluateFn", "StrategyBase", "StrategyOptions"]

W = TypeVar("W")
"""The global weights in a Flower API's form (`Parameters`, `ArrayRecord`)."""

ServerEvaluateFn = Callable[[int, dict[str, np.ndarray]], tuple[float, dict[str, Scalar]] | None]
"""`(server_round, {name: global weight}) -> (loss, metrics) | None`."""


class EvaluationResult(NamedTuple):
    """One client's evaluation result, as received (checked by `_aggregate_evaluation`)."""

    client_id: str
    num_examples: Any
    loss: Any
    metrics: Mapping[str, Any]
    fault: str | None = None
    """Why the result could not be read (it is then skipped)."""


class StrategyOptions(TypedDict, total=False):
    """Keyword arguments both strategies take (documented in `DeclearnStrategy`)."""

    model: Model[Any] | None
    initial_weights: Vector | Mapping[str, Any] | None
    trainable: Collection[str] | None
    client_optimizer: Required[Optimizer | Mapping[str, Any]]
    server_optimizer: Optimizer | Mapping[str, Any] | None
    train_config: TrainingConfig | Mapping[str, Any] | None
    eval_config: EvaluationConfig | Mapping[str, Any] | None
    evaluate_fn: ServerEvaluateFn | None
    fit_metrics_aggregation_fn: MetricsAggregationFn | None
    evaluate_metrics_aggregation_fn: MetricsAggregationFn | None
    accept_failures: bool
    checkpoint_path: str | os.PathLike[str] | None
    keep_checkpoints: int
    on_checkpoint_error: Literal["log", "raise"]
    aggregator: Aggregator | str | Sequence[Any] | None
    limits: ClientLimits | Mapping[str, Any] | None
    on_round_error: ErrorPolicy
    on_spec_mismatch: ErrorPolicy
    round_timeout: float | None
    dp: ServerDP | Mapping[str, Any] | None


_CORE_OPTIONS = (
    "model",
    "initial_weights",
    "trainable",
    "client_optimizer",
    "server_optimizer",
    "train_config",
    "eval_config",
    "aggregator",
    "limits",
    "on_round_error",
    "on_spec_mismatch",
    "dp",
)


class StrategyBase(ABC, Generic[W]):
    """What both strategies do, whatever the Flower API.

    Constructor checks, the round offset of a resumed run, checkpoints,
    sample sizes and the wait for clients, `accept_failures`, the
    transactional fit aggregation with its metric hook, the evaluation
    average with its metric hook, and the server-side `evaluate_fn`.

    A subclass converts the global weights to and from its Flower API's form
    (`_encode_weights`, `_decode_weights`); the base keeps the encoded copy it
    sent, so that weights Flower hands back unchanged are not decoded again.

    Parameters
    ----------
    fractions:
        The subclass's sampling fractions by argument name, checked to lie in [0, 1].
    **options:
        The shared keyword arguments (`StrategyOptions`, see `DeclearnStrategy`).
    """

    def __init__(self, fractions: Mapping[str, float], **options: Unpack[StrategyOptions]) -> None:
        for name, value in fractions.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"'{name}' must lie in [0, 1], not {value!r}.")
        opts: dict[str, Any] = dict(options)
        core_options = {key: opts.pop(key) for key in _CORE_OPTIONS if key in opts}
        if isinstance(core_options.get("limits"), Mapping):
            core_options["limits"] = ClientLimits(**core_options["limits"])
        keep = opts.pop("keep_checkpoints", 1)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"'keep_checkpoints' must be a positive int, not {keep!r}.")
        on_checkpoint_error = opts.pop("on_checkpoint_error", "log")
        if on_checkpoint_error not in ("log", "raise"):
            raise ValueError(
                f"'on_checkpoint_error' must be 'log' or 'raise', not {on_checkpoint_error!r}."
            )
        timeout = opts.pop("round_timeout", None)
        if timeout is not None and not 0 < timeout < math.inf:
            raise ValueError(f"'round_timeout' must be a positive number or None, not {timeout!r}.")
        checkpoint_path = opts.pop("checkpoint_path", None)
        self.evaluate_fn: ServerEvaluateFn | None = opts.pop("evaluate_fn", None)
        self.fit_metrics_aggregation_fn: MetricsAggregationFn | None = opts.pop(
            "fit_metrics_aggregation_fn", None
        )
        self.evaluate_metrics_aggregation_fn: MetricsAggregationFn | None = opts.pop(
            "evaluate_metrics_aggregation_fn", None
        )
        self.accept_failures: bool = opts.pop("accept_failures", True)
        if opts:
            raise TypeError(f"Unexpected keyword argument(s): {sorted(opts)}.")
        self.core: FederatedCore = build_core(**core_options)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.keep_checkpoints: int = keep
        self.on_checkpoint_error: Literal["log", "raise"] = on_checkpoint_error
        self.round_timeout: float | None = timeout
        self._round_offset = 0
        self._sample_rate = 1.0
        self._sent: W | None = None

    # -- global state ----------------------------------------------------------------------------

    @abstractmethod
    def _encode_weights(self) -> W:
        """Return the core's global weights in the Flower API's form."""

    @abstractmethod
    def _decode_weights(self, weights: W) -> WeightsPayload:
        """Return weights in the Flower API's form as arrays (by name or in wire order)."""

    def _flower_weights(self) -> W:
        """The global weights in the Flower API's form, encoded once after each change."""
        if self._sent is None:
            self._sent = self._encode_weights()
        return self._sent

    def _adopt(self, weights: W) -> None:
        """Make `weights` the global weights, unless they are the ones this strategy sent."""
        if weights is self._sent:
            return
        self.core.set_weights(self._decode_weights(weights))
        self._sent = weights

    def _forget_cached_weights(self) -> None:
        self._sent = None

    @property
    def global_weights(self) -> dict[str, np.ndarray]:
        """Current global weights, by name (do not modify in place)."""
        return self.core.get_weights()

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Save the server state (weights, server Optimizer state, round) to a checkpoint file.

        Parameters
        ----------
        path:
            Destination; defaults to `checkpoint_path`.

        Raises
        ------
        ValueError
            If there is no path.
        OSError
            If the file cannot be written.
        """
        target = path if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("No checkpoint path: pass `path` or set `checkpoint_path`.")
        return self.core.save_checkpoint(target, keep=self.keep_checkpoints)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Resume from a checkpoint: the next round continues its round count.

        Raises
        ------
        CheckpointError
            If the file is unreadable, truncated, altered or does not fit this
            strategy; the strategy is then unchanged.
        """
        self.core.load_checkpoint(path)
        self._round_offset = self.core.server_round
        self._forget_cached_weights()

    def _round(self, server_round: int) -> int:
        return self._round_offset + server_round

    def _after_round(self) -> None:
        """Write the checkpoint of an aggregated round; a failed write is logged (or raised)."""
        self._forget_cached_weights()
        if self.checkpoint_path is None:
            return
        try:
            self.core.save_checkpoint(self.checkpoint_path, keep=self.keep_checkpoints)
        except Exception as exc:
            if self.on_checkpoint_error == "raise":
                raise
            log(
                WARNING,
                "flwr_declearn: round %s: cannot write the checkpoint %s (training goes on): %r",
                self.core.server_round,
                self.checkpoint_path,
                exc,
            )

    # -- rounds ----------------------------------------------------------------------------------

    @staticmethod
    def _sample_size(available: int, fraction: float, minimum: int) -> int:
        return max(int(available * fraction), minimum)

    def _aggregate_fit(
        self, server_round: int, updates: Sequence[ClientUpdate]
    ) -> dict[str, Scalar] | None:
        """Run the core's transactional aggregation; return the fit metrics, None if unchanged."""
        metrics = self.core.aggregate(server_round, updates, self._fit_metrics)
        if metrics is None:
            return None
        if self.core.dp is not None:
            epsilon, delta = self.core.account_privacy(self._sample_rate)
            log(
                INFO,
                "flwr_declearn: round %s: client-level DP spent (epsilon=%.4g, delta=%g).",
                server_round,
                epsilon,
                delta,
            )
            metrics = {
                **metrics,
                protocol.METRIC_DP_EPSILON: epsilon,
                protocol.METRIC_DP_DELTA: delta,
            }
        self._after_round()
        return metrics

    @property
    def privacy_spent(self) -> tuple[float, float] | None:
        """The (epsilon, delta) of client-level DP spent so far (None without `dp`)."""
        if self.core.accountant is None:
            return None
        return self.core.accountant.epsilon(), self.core.accountant.delta

    def _fit_metrics(self, results: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
        if self.fit_metrics_aggregation_fn is not None:
            return self.fit_metrics_aggregation_fn(results)
        return dict(aggregation.weighted_metrics(results))

    def _refuses_failures(self, server_round: int, failures: int) -> bool:
        """Whether `failures` stop this round's aggregation (`accept_failures=False`)."""
        if failures and not self.accept_failures:
            log(
                WARNING,
                "flwr_declearn: round %s: failures occurred; not aggregating.",
                server_round,
            )
            return True
        return False

    def _aggregate_evaluation(
        self, server_round: int, results: Sequence[EvaluationResult]
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Average the clients' losses and metrics, weighted by their example counts.

        A client's second result, unreadable results, invalid counts and
        non-finite losses are skipped and logged; flwr_declearn's own metrics
        are dropped before `evaluate_metrics_aggregation_fn` sees them.
        """
        valid: list[tuple[int, float | None, dict[str, Scalar]]] = []
        limit = self.core.limits.max_examples
        seen: set[str] = set()
        for cid, count, loss, metrics, fault in sorted(results, key=lambda res: _order(res[0])):
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            fault = fault or _evaluation_fault(cid in seen, count, loss, limit)
            seen.add(cid)
            if fault:
                _skip_evaluation(server_round, cid, fault)
            elif count:
                valid.append((count, loss, protocol.public_entries(metrics)))
        if not valid:
            return None, {}
        eval_metrics = [(count, metrics) for count, _, metrics in valid]
        if self.evaluate_metrics_aggregation_fn is not None:
            metrics_out = self.evaluate_metrics_aggregation_fn(eval_metrics)
        else:
            metrics_out = dict(aggregation.weighted_metrics(eval_metrics))
        losses = [(count, loss) for count, loss, _ in valid if loss is not None]
        if not losses:
            return None, metrics_out
        total = sum(count for count, _ in losses)
        return float(sum(count * float(loss) for count, loss in losses) / total), metrics_out

    def _server_evaluation(
        self, server_round: int, weights: W
    ) -> tuple[float, dict[str, Scalar]] | None:
        """Run `evaluate_fn` on `weights` (made the global ones), if there is an `evaluate_fn`."""
        if self.evaluate_fn is None:
            return None
        self._adopt(weights)
        return self.evaluate_fn(self._round(server_round), self.core.get_weights())

    def _wait_for(self, count_available: Callable[[], int], needed: int) -> tuple[int, bool]:
        """Wait up to `round_timeout` seconds (None: for good) for `needed` clients.

        Returns
        -------
        The number of connected clients, and whether the wait timed out.
        """
        deadline = None if self.round_timeout is None else time.monotonic() + self.round_timeout
        available = count_available()
        while available < needed and (deadline is None or time.monotonic() < deadline):
            log(
                INFO,
                "Waiting for nodes to connect: %d connected (minimum required: %d).",
                available,
                needed,
            )
            time.sleep(1.0)
            available = count_available()
        if available >= needed:
            return available, False
        log(
            WARNING,
            "flwr_declearn: only %d of the %d required clients are connected after %.0f s; "
            "the round goes on with them.",
            available,
            needed,
            self.round_timeout,
        )
        return available, True

    def _sample_count(
        self,
        count_available: Callable[[], int],
        fraction: float,
        minimum: int,
        min_available: int,
        for_training: bool,
    ) -> int:
        """Return how many clients to sample (0: none), waiting for `min_available` first.

        As in Flower, `max(int(available * fraction), minimum)` clients are
        sampled once `min_available` are connected, and none if fewer than
        that are connected; but once `round_timeout` has passed, the round
        goes on with the connected clients (so a dead node cannot hang the run).
        """
        available, timed_out = self._wait_for(count_available, max(min_available, 1))
        size = self._sample_size(available, fraction, minimum)
        if size > available:
            size = available if timed_out else 0
        if for_training:
            self._sample_rate = size / available if available else 0.0
        return size


def _order(client_id: Any) -> tuple[int, str]:
    return client_order(str(client_id))


def _evaluation_fault(repeated: bool, count: Any, loss: Any, limit: int) -> str | None:
    if repeated:
        return "a second result in this round"
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= limit:
        return f"invalid example count {count!r}"
    if loss is not None and not (isinstance(loss, int | float) and math.isfinite(loss)):
        return f"invalid loss {loss!r}"
    return None


def _skip_evaluation(server_round: int, client_id: str, fault: str) -> None:
    log(
        WARNING,
        "flwr_declearn: round %s: skipping the evaluation of client %s: %s",
        server_round,
        client_id,
        fault,
    )
