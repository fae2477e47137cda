"""Concrete metrics: accuracy, mean loss, mean squared and absolute errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from flwr_declearn.metrics._api import Metric
from flwr_declearn.utils import register_type

__all__ = ["Accuracy", "MeanAbsoluteError", "MeanLoss", "MeanSquaredError"]


def _per_sample(values: np.ndarray, n_samples: int) -> np.ndarray:
    """Average values over every axis but the first, giving one value per sample."""
    return values.reshape(n_samples, -1).mean(axis=1) if n_samples else values.reshape(0)


@register_type(name="accuracy", group="Metric")
class Accuracy(Metric):
    """Weighted share of correctly predicted labels.

    Predicted labels are the argmax of `y_pred` when it has several columns
    (multiclass scores), else `y_pred > threshold` (binary scores). One-hot
    `y_true` are turned into labels by argmax.

    Parameters
    ----------
    threshold:
        Decision threshold for single-column (binary) scores: 0.5 for
        probabilities, 0.0 for logits.
    """

    name: ClassVar[str] = "accuracy"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        super().__init__()

    def _batch_states(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray
    ) -> dict[str, float]:
        n_samples = len(s_wght)
        if y_pred.ndim >= 2 and y_pred.shape[-1] > 1:
            labels = np.argmax(y_pred.reshape(n_samples, -1), axis=1)
        else:
            labels = (y_pred.reshape(n_samples) > self.threshold).astype(np.int64)
        if y_true.ndim >= 2 and y_true.shape[-1] > 1:
            truth = np.argmax(y_true.reshape(n_samples, -1), axis=1)
        else:
            truth = y_true.reshape(n_samples)
        correct = (labels == truth).astype(np.float64)
        return {"total": float(np.dot(correct, s_wght)), "weight": float(s_wght.sum())}

    def _result(self, states: dict[str, float]) -> dict[str, float]:
        return {self.name: self._weighted_mean(states)}

    def get_config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class MeanLoss(Metric):
    """Weighted mean of a sample-wise loss function (e.g. `Model.loss_function`).

    Parameters
    ----------
    loss_fn:
        Function `(y_true, y_pred) -> sample-wise losses` (1-d array).
    """

    name: ClassVar[str] = "loss"

    def __init__(self, loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.loss_fn = loss_fn
        super().__init__()

    def _batch_states(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray
    ) -> dict[str, float]:
        losses = np.asarray(self.loss_fn(y_true, y_pred), dtype=np.float64).reshape(-1)
        if len(losses) != len(s_wght):
            raise ValueError(
                f"MeanLoss: the loss function returned {len(losses)} values "
                f"for {len(s_wght)} samples."
            )
        return {"total": float(np.dot(losses, s_wght)), "weight": float(s_wght.sum())}

    def _result(self, states: dict[str, float]) -> dict[str, float]:
        return {self.name: self._weighted_mean(states)}

    def get_config(self) -> dict[str, Any]:
        raise TypeError("MeanLoss wraps a function and cannot be rebuilt from a config.")


@register_type(name="mse", group="Metric")
class MeanSquaredError(Metric):
    """Weighted mean over samples of the squared error (averaged over output dimensions)."""

    name: ClassVar[str] = "mse"

    def _batch_states(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray
    ) -> dict[str, float]:
        diff = y_pred.astype(np.float64).reshape(y_true.shape) - y_true.astype(np.float64)
        errors = _per_sample(diff**2, len(s_wght))
        return {"total": float(np.dot(errors, s_wght)), "weight": float(s_wght.sum())}

    def _result(self, states: dict[str, float]) -> dict[str, float]:
        return {self.name: self._weighted_mean(states)}


@register_type(name="mae", group="Metric")
class MeanAbsoluteError(Metric):
    """Weighted mean over samples of the absolute error (averaged over output dimensions)."""

    name: ClassVar[str] = "mae"

    def _batch_states(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray
    ) -> dict[str, float]:
        diff = y_pred.astype(np.float64).reshape(y_true.shape) - y_true.astype(np.float64)
        errors = _per_sample(np.abs(diff), len(s_wght))
        return {"total": float(np.dot(errors, s_wght)), "weight": float(s_wght.sum())}

    def _result(self, states: dict[str, float]) -> dict[str, float]:
        return {self.name: self._weighted_mean(states)}
