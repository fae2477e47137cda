"""Metrics accumulate batch states that merge by addition and match scikit-learn's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error

from flwr_declearn.metrics import (
    Accuracy,
    MeanAbsoluteError,
    MeanLoss,
    MeanSquaredError,
    Metric,
    MetricSet,
    build_metric,
)


def batched(
    metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray, size: int
) -> dict[str, float]:
    metric.reset()
    for start in range(0, len(y_true), size):
        stop = start + size
        metric.update(y_true[start:stop], y_pred[start:stop], weights[start:stop])
    return metric.get_result()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    n_classes=st.integers(2, 5),
    size=st.integers(1, 17),
    seed=st.integers(0, 2**16),
)
def test_multiclass_accuracy_matches_sklearn_over_batches(
    n: int, n_classes: int, size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, size=n)
    scores = rng.normal(size=(n, n_classes))
    weights = rng.uniform(0.1, 2.0, size=n)
    got = batched(Accuracy(), y_true, scores, weights, size)["accuracy"]
    exp = accuracy_score(y_true, scores.argmax(axis=1), sample_weight=weights)
    assert got == pytest.approx(exp, rel=1e-12)


def test_binary_accuracy_thresholds_single_column_scores() -> None:
    y_true = np.array([0, 1, 1, 0])
    probs = np.array([[0.2], [0.7], [0.4], [0.6]])
    metric = Accuracy()
    metric.update(y_true, probs)
    assert metric.get_result() == {"accuracy": 0.5}
    logits = Accuracy(threshold=0.0)
    logits.update(y_true, np.array([-1.0, 2.0, -0.5, -0.1]))
    assert logits.get_result() == {"accuracy": 0.75}


def test_one_hot_targets_are_compared_by_argmax() -> None:
    metric = Accuracy()
    metric.update(np.eye(3)[[0, 2, 1]], np.eye(3)[[0, 2, 2]])
    assert metric.get_result()["accuracy"] == pytest.approx(2 / 3)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 50),
    dims=st.integers(1, 3),
    size=st.integers(1, 13),
    seed=st.integers(0, 2**16),
)
def test_regression_errors_match_sklearn(n: int, dims: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=(n, dims))
    y_pred = rng.normal(size=(n, dims))
    weights = rng.uniform(0.1, 2.0, size=n)
    mse = batched(MeanSquaredError(), y_true, y_pred, weights, size)["mse"]
    mae = batched(MeanAbsoluteError(), y_true, y_pred, weights, size)["mae"]
    assert mse == pytest.approx(mean_squared_error(y_true, y_pred, sample_weight=weights))
    assert mae == pytest.approx(mean_absolute_error(y_true, y_pred, sample_weight=weights))


def test_mean_loss_weights_a_sample_wise_loss() -> None:
    metric = MeanLoss(lambda y_true, y_pred: np.abs(y_true - y_pred).reshape(-1))
    metric.update(np.array([0.0, 0.0]), np.array([1.0, 3.0]), np.array([3.0, 1.0]))
    assert metric.get_result() == {"loss": pytest.approx(1.5)}
    bad = MeanLoss(lambda y_true, y_pred: np.zeros(1))
    with pytest.raises(ValueError, match="returned 1 values for 2 samples"):
        bad.update(np.zeros(2), np.zeros(2))
    with pytest.raises(TypeError, match="cannot be rebuilt from a config"):
        metric.get_config()


def test_states_of_several_clients_merge_into_the_global_value() -> None:
    rng = np.random.default_rng(0)
    y_true, scores = rng.integers(0, 3, size=40), rng.normal(size=(40, 3))
    whole = Accuracy()
    whole.update(y_true, scores)
    first, second = Accuracy(), Accuracy()
    first.update(y_true[:13], scores[:13])
    second.update(y_true[13:], scores[13:])
    first.merge_states(second.get_states())
    assert first.get_result() == pytest.approx(whole.get_result())
    with pytest.raises(KeyError, match="missing states"):
        first.merge_states({"total": 1.0})


def test_metrics_without_samples_are_nan_and_inputs_must_align() -> None:
    assert np.isnan(Accuracy().get_result()["accuracy"])
    with pytest.raises(ValueError, match="y_true has 3 samples, y_pred has 2"):
        MeanSquaredError().update(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="s_wght has 2 values for 3 samples"):
        MeanSquaredError().update(np.zeros(3), np.zeros(3), np.ones(2))


def test_metrics_build_from_names_and_specs() -> None:
    assert isinstance(build_metric("mse"), MeanSquaredError)
    metric = build_metric(("accuracy", {"threshold": 0.0}))
    assert isinstance(metric, Accuracy) and metric.threshold == 0.0
    assert build_metric(metric) is metric
    assert build_metric(("accuracy", metric.get_config())).threshold == 0.0
    with pytest.raises(KeyError, match="registered names"):
        build_metric("f1")


def test_metric_sets_merge_results_and_refuse_duplicate_names() -> None:
    metrics = MetricSet(["mse", "mae"])
    metrics.update(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    assert metrics.get_result() == {"mse": 2.0, "mae": 1.0}
    metrics.reset()
    assert np.isnan(metrics.get_result()["mse"])
    with pytest.raises(ValueError, match="duplicate metric names"):
        MetricSet(["mse", MeanSquaredError()])
