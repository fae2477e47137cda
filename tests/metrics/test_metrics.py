"""Metrics accumulate batch states that merge by addition and match scikit-learn's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from flwr_declearn.metrics import (
    Accuracy,
    BinaryAccuracyPrecisionRecall,
    BinaryRocAUC,
    MeanAbsoluteError,
    MeanLoss,
    MeanSquaredError,
    Metric,
    MetricSet,
    MulticlassAccuracyPrecisionRecall,
    RSquared,
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
    # declearn's MAE / MSE sum the errors over output channels: dims x scikit-learn's mean
    assert mse == pytest.approx(dims * mean_squared_error(y_true, y_pred, sample_weight=weights))
    assert mae == pytest.approx(dims * mean_absolute_error(y_true, y_pred, sample_weight=weights))


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
    first.set_states(first.get_states() + second.get_states())
    assert first.get_result() == pytest.approx(whole.get_result())
    with pytest.raises(TypeError, match="expects a MeanState"):
        first.set_states({"num_sum": 1.0})  # type: ignore[arg-type]


def test_empty_metrics_and_misaligned_inputs() -> None:
    assert np.isnan(Accuracy().get_result()["accuracy"])  # ours: NaN before any sample
    assert MeanSquaredError().get_result() == {"mse": 0.0}  # declearn's: 0.0
    with pytest.raises(ValueError, match=r"shapes differ: \(3,\) vs \(2,\)"):
        MeanSquaredError().update(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="sample weights for 3 samples"):
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
    assert metrics.get_result()["mse"] == 0.0
    with pytest.raises(ValueError, match="duplicate metric names"):
        MetricSet(["mse", MeanSquaredError()])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), size=st.integers(1, 17), seed=st.integers(0, 2**16))
def test_classification_and_regression_metrics_match_sklearn(n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    scores = rng.uniform(0.0, 0.99, size=n).round(2)  # none at the top threshold (1.0)
    weights = rng.uniform(0.1, 2.0, size=n)
    apr = batched(BinaryAccuracyPrecisionRecall(thresh=0.5), y_true, scores, weights, size)
    preds = (scores >= 0.5).astype(int)
    kwargs = {"sample_weight": weights, "zero_division": 0}
    assert apr["precision"] == pytest.approx(precision_score(y_true, preds, **kwargs))
    assert apr["recall"] == pytest.approx(recall_score(y_true, preds, **kwargs))
    assert apr["f-score"] == pytest.approx(f1_score(y_true, preds, **kwargs))
    np.testing.assert_allclose(
        apr["confusion"], confusion_matrix(y_true, preds, sample_weight=weights, labels=[0, 1])
    )
    labels = rng.integers(0, 3, size=n)
    probs = rng.dirichlet(np.ones(3), size=n)
    multi = batched(MulticlassAccuracyPrecisionRecall([0, 1, 2]), labels, probs, weights, size)
    np.testing.assert_allclose(
        multi["recall"],
        recall_score(labels, probs.argmax(1), labels=[0, 1, 2], average=None, **kwargs),
    )
    # On a threshold grid finer than the scores' precision, the ROC AUC is exact.
    roc = batched(BinaryRocAUC(scale=0.01, bound=(0.0, 1.0)), y_true, scores, weights, size)
    if 0 < y_true.sum() < n:
        expected = roc_auc_score(y_true, scores, sample_weight=weights)
        assert roc["roc_auc"] == pytest.approx(expected)
    values, noisy = rng.normal(size=n), rng.normal(size=n)
    r2 = batched(RSquared(), values, values + noisy, weights, size)["r2"]
    assert r2 == pytest.approx(r2_score(values, values + noisy, sample_weight=weights))


def test_r_squared_matches_sklearn_and_merges_across_clients() -> None:
    rng = np.random.default_rng(0)
    y_true, weights = rng.normal(size=50), rng.uniform(0.5, 2.0, size=50)
    y_pred = y_true + rng.normal(scale=0.3, size=50)
    first, second = RSquared(), RSquared()
    first.update(y_true[:20], y_pred[:20], weights[:20])
    second.update(y_true[20:], y_pred[20:], weights[20:])
    first.set_states(first.get_states() + second.get_states())
    expected = r2_score(y_true, y_pred, sample_weight=weights)
    assert first.get_result()["r2"] == pytest.approx(expected, rel=1e-12)


def test_unbounded_roc_grids_grow_and_aggregate_by_interpolation() -> None:
    metric = BinaryRocAUC(scale=0.1)
    metric.update(np.array([0, 1, 1]), np.array([-0.3, 0.2, 1.4]))
    thresh = metric.get_states().thresh
    assert thresh[0] == pytest.approx(-0.3) and thresh[-1] == pytest.approx(1.4)
    other = BinaryRocAUC(scale=0.25)
    other.update(np.array([0, 1]), np.array([0.1, 0.9]))
    merged = metric.get_states() + other.get_states()
    assert set(np.round(thresh, 6)) <= set(np.round(merged.thresh, 6))
    total = merged.tpos + merged.fneg  # positives, at every threshold
    np.testing.assert_allclose(total, 3.0)
    bounded = BinaryRocAUC(bound=(0.0, 1.0))
    with pytest.raises(TypeError, match="bounded metric's thresholds"):
        bounded.set_states(merged)
    with pytest.raises(NotImplementedError):
        metric.get_states().prepare_for_secagg()
    summed, clear = bounded.get_states().prepare_for_secagg()
    assert set(summed) == {"tpos", "tneg", "fpos", "fneg"} and clear is not None


def test_metric_sets_round_trip_their_config_and_states() -> None:
    metrics = MetricSet.from_specs(["mae", ("binary-classif", {"thresh": 0.3}), RSquared()])
    assert MetricSet.from_specs(metrics) is metrics
    clone = MetricSet.from_config(metrics.get_config())
    assert clone.get_config() == metrics.get_config()
    metrics.update(np.array([0.0, 1.0]), np.array([0.2, 0.9]))
    clone.set_states(metrics.get_states())
    assert clone.get_result().keys() == metrics.get_result().keys()
    assert clone.get_result()["mae"] == metrics.get_result()["mae"]
    with pytest.raises(TypeError, match="expected a list of metrics"):
        MetricSet.from_specs("mae")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no metrics named"):
        clone.set_states({"nope": clone.get_states()["mae"]})
    assert isinstance(Metric.from_specs("r2", {}), RSquared)
