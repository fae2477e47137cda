"""What the legacy and the Message API strategies share; each subclass adds its API's glue."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from logging import INFO, WARNING
from pathlib import Path
from typing import Any, Literal, Required, TypedDict, Unpack

import numpy as np
from flwr.common import MetricsAggregationFn, Scalar, log

from flwr_declearn.flower import aggregation
from flwr_declearn.flower._core import (
    ClientUpdate,
    ErrorPolicy,
    FederatedCore,
    build_core,
    client_order,
)
from flwr_declearn.flower._validation import ClientLimits
from flwr_declearn.flower.aggregators import Aggregator
from flwr_declearn.flower.config import EvaluationConfig, TrainingConfig
from flwr_declearn.flower.server_dp import ServerDP
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer import Optimizer

__all__ = ["ServerEvaluateFn", "StrategyBase", "StrategyOptions"]

ServerEvaluateFn = Callable[[int, dict[str, np.ndarray]], tuple[float, dict[str, Scalar]] | None]
"""`(server_round, {name: global weight}) -> (loss, metrics) | None`."""


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


class StrategyBase:
    """Constructor normalisation, round offset, checkpoints, sampling sizes and metric hooks.

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

    # -- global state ----------------------------------------------------------------------------

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

    def _forget_cached_weights(self) -> None:
        """Drop the subclass's cached Flower copy of the global weights."""

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
            metrics = {**metrics, "dp-epsilon": epsilon, "dp-delta": delta}
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

    def _aggregate_evaluation(
        self, server_round: int, results: Sequence[tuple[str, Any, Any, Mapping[str, Any]]]
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Average `(client_id, num_examples, loss, metrics)` results weighted by example counts.

        Results with an invalid count or a non-finite loss are skipped and logged.
        """
        valid: list[tuple[int, float | None, dict[str, Scalar]]] = []
        limit = self.core.limits.max_examples
        for cid, count, loss, metrics in sorted(results, key=lambda res: _order(res[0])):
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= limit:
                _skip_eval(server_round, cid, f"invalid example count {count!r}")
                continue
            if loss is not None and not (isinstance(loss, int | float) and math.isfinite(loss)):
                _skip_eval(server_round, cid, f"invalid loss {loss!r}")
                continue
            if count:
                valid.append((count, loss, dict(metrics)))
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


def _skip_eval(server_round: int, client_id: str, fault: str) -> None:
    log(
        WARNING,
        "flwr_declearn: round %s: skipping the evaluation of client %s: %s",
        server_round,
        client_id,
        fault,
    )
