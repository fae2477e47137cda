"""Evaluation of a Model on a dataset, shared by clients and server-side evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.metrics import Accuracy, MeanLoss, Metric, MetricSet
from flwr_declearn.model.api import Model, Vector

__all__ = ["MetricSpec", "ModelEvaluator", "evaluate_model"]

MetricSpec = Metric | str | tuple[str, dict[str, Any]]


def default_metrics(dataset: InMemoryDataset) -> list[MetricSpec]:
    """Accuracy when the dataset's targets are class labels (bool or int), else nothing."""
    is_classif = dataset.target is not None and dataset.target.dtype.kind in "biu"
    return [Accuracy()] if is_classif else []


def evaluate_model(
    model: Model[Any],
    dataset: InMemoryDataset,
    metrics: Sequence[MetricSpec] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Return the mean loss ("loss") and scalar metrics of `model` over `dataset`.

    Non-scalar results (e.g. a confusion matrix) are left out: Flower's
    metrics records carry scalars.

    Parameters
    ----------
    model:
        Model to evaluate (its current weights).
    dataset:
        Evaluation data, covered once in order.
    metrics:
        Metrics or specs for `build_metric`; None picks `default_metrics(dataset)`.
    batch_size:
        Number of samples per inference batch.
    """
    specs = default_metrics(dataset) if metrics is None else list(metrics)
    metric_set = MetricSet([MeanLoss(model.loss_function), *specs])
    for batch in dataset.generate_batches(batch_size, shuffle=False, drop_remainder=False):
        y_true, y_pred, s_wght = model.compute_batch_predictions(batch)
        metric_set.update(y_true, y_pred, s_wght)
    results = metric_set.get_result()
    return {key: float(val) for key, val in results.items() if np.ndim(val) == 0}


class ModelEvaluator:
    """Server-side `evaluate_fn` for the strategies: evaluates global weights on a dataset.

    Parameters
    ----------
    model:
        An initialized model with the same weights specs as the global model.
    dataset:
        Server-held evaluation data.
    metrics, batch_size:
        As for `evaluate_model`.
    """

    def __init__(
        self,
        model: Model[Any],
        dataset: InMemoryDataset,
        metrics: Sequence[MetricSpec] | None = None,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.metrics = metrics
        self.batch_size = batch_size
        self._vector_type = type(model.get_weights())

    def __call__(
        self, server_round: int, weights: dict[str, np.ndarray]
    ) -> tuple[float, dict[str, float]]:
        """Load `weights` into the model; return `(loss, metrics)` on the dataset."""
        vector: Vector = self._vector_type.unpack(weights)
        self.model.set_weights(vector)
        results = evaluate_model(self.model, self.dataset, self.metrics, self.batch_size)
        return float(results["loss"]), results
