"""Metric API: evaluation metrics accumulated over batches of numpy predictions."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar, Self

import numpy as np

from flwr_declearn.utils import build_from_spec, create_types_registry

__all__ = ["Metric", "MetricSet", "build_metric"]


@create_types_registry(name="Metric")
class Metric(metaclass=ABCMeta):
    """Metric computed from `(y_true, y_pred, s_wght)` batches, accumulated in summable states.

    States are additive (sums of weighted values and of weights), so the
    states of several batches, or of several clients, merge by addition
    (`merge_states`) before `get_result` turns them into metric values.

    Subclasses set `name` and implement `_batch_states` and `_result`.
    """

    name: ClassVar[str]
    """Name of the metric, the key of its main value in `get_result`."""

    def __init__(self) -> None:
        self._states: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated states."""
        self._states = dict.fromkeys(self._state_names(), 0.0)

    @classmethod
    def _state_names(cls) -> tuple[str, ...]:
        return ("total", "weight")

    @abstractmethod
    def _batch_states(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray
    ) -> dict[str, float]:
        """Return the additive states of one batch, with `s_wght` the sample weights."""

    @abstractmethod
    def _result(self, states: dict[str, float]) -> dict[str, float]:
        """Compute the metric values from accumulated states."""

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        """Accumulate the states of a batch of predictions.

        Parameters
        ----------
        y_true:
            True labels or values, batched along the first axis.
        y_pred:
            Predictions (scores or values), aligned with `y_true`.
        s_wght:
            Optional 1-d sample weights; 1 for every sample if None.

        Raises
        ------
        ValueError
            If the batch sizes of the inputs differ.
        """
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        n_samples = len(y_true) if y_true.ndim else 1
        if (len(y_pred) if y_pred.ndim else 1) != n_samples:
            raise ValueError(
                f"{type(self).__name__}: y_true has {n_samples} samples, y_pred has {len(y_pred)}."
            )
        if s_wght is None:
            weights = np.ones(n_samples, dtype=np.float64)
        else:
            weights = np.asarray(s_wght, dtype=np.float64).reshape(-1)
            if len(weights) != n_samples:
                raise ValueError(
                    f"{type(self).__name__}: s_wght has {len(weights)} values "
                    f"for {n_samples} samples."
                )
        for key, val in self._batch_states(y_true, y_pred, weights).items():
            self._states[key] += float(val)

    def get_states(self) -> dict[str, float]:
        """Return a copy of the accumulated (additive) states."""
        return dict(self._states)

    def merge_states(self, states: dict[str, float]) -> None:
        """Add states of another instance (e.g. another client's) to ours.

        Raises
        ------
        KeyError
            If `states` lacks a state of this metric.
        """
        missing = set(self._states) - set(states)
        if missing:
            raise KeyError(f"{type(self).__name__}: missing states {sorted(missing)}.")
        for key in self._states:
            self._states[key] += float(states[key])

    def get_result(self) -> dict[str, float]:
        """Return the metric value(s) of the accumulated states (NaN without any sample)."""
        return self._result(dict(self._states))

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable config that `from_config` takes."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Instantiate a metric from its config."""
        return cls(**config)

    def _weighted_mean(self, states: dict[str, float]) -> float:
        return states["total"] / states["weight"] if states["weight"] > 0 else float("nan")


def build_metric(spec: Metric | str | tuple[str, dict[str, Any]]) -> Metric:
    """Build a Metric from an instance, a registered name or a `(name, config)` pair.

    Raises
    ------
    KeyError
        If the name is not that of a registered Metric (e.g. "accuracy", "mse", "mae").
    """
    metric = build_from_spec(spec, group="Metric")
    if not isinstance(metric, Metric):  # pragma: no cover - registry guarantees this
        raise TypeError(f"Expected a Metric, got {type(metric).__qualname__}.")
    return metric


class MetricSet:
    """Several metrics updated together; results merged into one dict.

    Parameters
    ----------
    metrics:
        Metrics, or specs accepted by `build_metric`.

    Raises
    ------
    ValueError
        If two metrics share a name.
    """

    def __init__(self, metrics: Iterable[Metric | str | tuple[str, dict[str, Any]]]) -> None:
        self.metrics = [build_metric(spec) for spec in metrics]
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"MetricSet: duplicate metric names in {names}.")

    def reset(self) -> None:
        """Reset every metric."""
        for metric in self.metrics:
            metric.reset()

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        """Update every metric with a batch."""
        for metric in self.metrics:
            metric.update(y_true, y_pred, s_wght)

    def get_result(self) -> dict[str, float]:
        """Return the merged results of every metric."""
        results: dict[str, float] = {}
        for metric in self.metrics:
            results.update(metric.get_result())
        return results
