"""Metrics that average a sample-wise score: MAE, MSE, accuracy, mean loss."""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from flwr_declearn.metrics._api import Metric, MetricState, squeeze_into_identical_shapes

__all__ = [
    "Accuracy",
    "MeanAbsoluteError",
    "MeanLoss",
    "MeanMetric",
    "MeanSquaredError",
    "MeanState",
]


@dataclasses.dataclass
class MeanState(MetricState):
    """Weighted sum of sample-wise scores, and the sum of the weights."""

    num_sum: float = 0.0
    divisor: float = 0.0


class MeanMetric(Metric[Any], register=False):
    """Weighted mean over samples of `metric_func(y_true, y_pred)`.

    With no sample seen, the result is `empty_result` (0.0, as declearn).
    """

    state_cls = MeanState
    empty_result: ClassVar[float] = 0.0

    @abstractmethod
    def metric_func(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """Return one score per sample of the batch."""

    def build_initial_states(self) -> MeanState:
        return MeanState()

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        scores = np.asarray(self.metric_func(np.asarray(y_true), np.asarray(y_pred)))
        scores = scores.astype(np.float64).reshape(-1)
        n_samples = len(np.asarray(y_true)) if np.ndim(y_true) else 1
        if len(scores) != n_samples:
            raise ValueError(
                f"{type(self).__name__}: {len(scores)} sample-wise scores for {n_samples} samples."
            )
        weights = self._prepare_sample_weights(s_wght, n_samples)
        self._states.num_sum += float(np.sum(scores * weights))
        self._states.divisor += float(np.sum(weights))

    def get_result(self) -> dict[str, float | np.ndarray]:
        states = self._states
        value = states.num_sum / states.divisor if states.divisor else self.empty_result
        return {self.name: value}


class _MeanError(MeanMetric, register=False):
    """Weighted mean over samples of `error(y_true - y_pred)`, summed over output channels."""

    error: ClassVar[Any]
    """Element-wise error of the differences (a numpy ufunc)."""

    def metric_func(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        y_true, y_pred = squeeze_into_identical_shapes(y_true, y_pred)
        errors = type(self).error(y_true.astype(np.float64) - y_pred.astype(np.float64))
        return errors.reshape(len(errors), -1).sum(axis=1) if errors.ndim > 1 else errors


class MeanAbsoluteError(_MeanError):
    """Weighted mean over samples of the absolute error (summed over output channels)."""

    name = "mae"
    error = np.abs


class MeanSquaredError(_MeanError):
    """Weighted mean over samples of the squared error (summed over output channels)."""

    name = "mse"
    error = np.square


class Accuracy(MeanMetric):
    """Weighted share of correctly predicted labels (NaN before any sample).

    Predicted labels are the argmax of `y_pred` when it has several columns
    (multiclass scores), else `y_pred > threshold` (binary scores). One-hot
    `y_true` are turned into labels by argmax.

    Parameters
    ----------
    threshold:
        Decision threshold for single-column (binary) scores: 0.5 for
        probabilities, 0.0 for logits.
    """

    name = "accuracy"
    empty_result = float("nan")

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__()

    def metric_func(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        n_samples = len(y_true) if y_true.ndim else 1
        if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
            labels = np.argmax(y_pred.reshape(n_samples, -1), axis=1)
        else:
            labels = (y_pred.reshape(n_samples) > self.threshold).astype(np.int64)
        if y_true.ndim >= 2 and y_true.shape[-1] > 1:
            truth = np.argmax(y_true.reshape(n_samples, -1), axis=1)
        else:
            truth = y_true.reshape(n_samples)
        return (labels == truth).astype(np.float64)

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class MeanLoss(MeanMetric, register=False):
    """Weighted mean of a sample-wise loss function, e.g. `Model.loss_function` (NaN if empty).

    Parameters
    ----------
    loss_fn:
        Function `(y_true, y_pred) -> sample-wise losses` (1-d array).
    """

    name = "loss"
    empty_result = float("nan")

    def __init__(self, loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.loss_fn = loss_fn
        super().__init__()

    def metric_func(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        losses = np.asarray(self.loss_fn(y_true, y_pred), dtype=np.float64).reshape(-1)
        n_samples = len(y_true) if y_true.ndim else 1
        if len(losses) != n_samples:
            raise ValueError(
                f"MeanLoss: the loss function returned {len(losses)} values "
                f"for {n_samples} samples."
            )
        return losses

    def get_config(self) -> dict[str, Any]:
        raise TypeError("MeanLoss wraps a function and cannot be rebuilt from a config.")

    def __repr__(self) -> str:
        return f"MeanLoss({self.loss_fn!r})"
