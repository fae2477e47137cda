"""Server- and client-side evaluation returns what Flower's metrics records can carry."""

from __future__ import annotations

import numpy as np

from flwr_declearn.flower import evaluate_model
from tests.flower.conftest import LinearModel, regression_data


def test_evaluate_model_keeps_scalar_metrics_and_drops_array_results() -> None:
    model = LinearModel(n_features=3)
    data = regression_data(40, seed=0)
    results = evaluate_model(model, data, metrics=["r2", ["multi-classif", {"labels": [0, 1]}]])
    assert {"loss", "r2", "accuracy"} <= set(results)
    assert "confusion" not in results and "precision" not in results
    assert all(isinstance(value, float) for value in results.values())
    assert np.isfinite(results["loss"])
