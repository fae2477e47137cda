"""Accuracy, precision, recall and F-score for binary and multiclass classifiers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from flwr_declearn.metrics._api import Metric, MetricState

__all__ = [
    "BinaryAccuracyPrecisionRecall",
    "BinaryConfmat",
    "ClassifConfmat",
    "MulticlassAccuracyPrecisionRecall",
]


def _ratio(num: Any, den: Any) -> Any:
    """num / den, 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
    return float(out) if out.ndim == 0 else out


@dataclasses.dataclass
class BinaryConfmat(MetricState):
    """Weighted counts of true / false positives / negatives."""

    tpos: float = 0.0
    tneg: float = 0.0
    fpos: float = 0.0
    fneg: float = 0.0


class BinaryAccuracyPrecisionRecall(Metric[BinaryConfmat]):
    """Accuracy, precision, recall, F-score and confusion matrix of a binary classifier.

    A sample is predicted positive when its score is `>= thresh`; it is
    truly positive when its label equals `label`. 2-d inputs (multilabel)
    count every (sample, label) pair. Results: "accuracy", "precision",
    "recall", "f-score" (0 where undefined) and "confusion"
    (`[[tn, fp], [fn, tp]]`).

    Parameters
    ----------
    thresh:
        Decision threshold on predicted scores.
    label:
        Value of the positive label in `y_true`.
    """

    name = "binary-classif"
    state_cls = BinaryConfmat

    def __init__(self, thresh: float = 0.5, label: int | str = 1) -> None:
        self.thresh = thresh
        self.label = label
        super().__init__()

    def get_config(self) -> dict[str, Any]:
        return {"thresh": self.thresh, "label": self.label}

    def build_initial_states(self) -> BinaryConfmat:
        return BinaryConfmat()

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        truth, pred, weights = _binary_inputs(y_true, y_pred, s_wght, self.label, self)
        positive = pred >= self.thresh
        st = self._states
        st.tpos += float(np.sum(weights * (truth & positive)))
        st.tneg += float(np.sum(weights * (~truth & ~positive)))
        st.fpos += float(np.sum(weights * (~truth & positive)))
        st.fneg += float(np.sum(weights * (truth & ~positive)))

    def get_result(self) -> dict[str, float | np.ndarray]:
        st = self._states
        total = st.tpos + st.tneg + st.fpos + st.fneg
        return {
            "accuracy": _ratio(st.tpos + st.tneg, total),
            "precision": _ratio(st.tpos, st.tpos + st.fpos),
            "recall": _ratio(st.tpos, st.tpos + st.fneg),
            "f-score": _ratio(2 * st.tpos, 2 * st.tpos + st.fpos + st.fneg),
            "confusion": np.array([[st.tneg, st.fpos], [st.fneg, st.tpos]]),
        }


def _binary_inputs(
    y_true: Any, y_pred: Any, s_wght: Any, label: Any, metric: Metric[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean truths, scores and per-entry weights, with weights broadcast over labels."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred, dtype=np.float64)
    n_samples = len(y_true) if y_true.ndim else 1
    if y_true.shape != y_pred.shape and y_true.size != y_pred.size:
        raise ValueError(f"y_true and y_pred shapes differ: {y_true.shape} vs {y_pred.shape}.")
    truth = (y_true == label).reshape(n_samples, -1)
    pred = y_pred.reshape(n_samples, -1)
    weights = metric._prepare_sample_weights(s_wght, n_samples)[:, None]
    return truth, pred, weights


@dataclasses.dataclass
class ClassifConfmat(MetricState):
    """Weighted confusion matrix: rows are true labels, columns predicted ones."""

    confmat: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))


class MulticlassAccuracyPrecisionRecall(Metric[ClassifConfmat]):
    """Accuracy, label-wise precision, recall and F-score, and confusion matrix (multiclass).

    `y_pred` holds predicted labels, or scores whose last axis runs over
    `labels` (the argmax is taken). Samples whose true or predicted label is
    not in `labels` are ignored.

    Parameters
    ----------
    labels:
        The class labels, in the order of the scores' last axis.
    """

    name = "multi-classif"
    state_cls = ClassifConfmat

    def __init__(self, labels: list[int] | list[str]) -> None:
        self.labels = list(labels)
        super().__init__()

    def get_config(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def build_initial_states(self) -> ClassifConfmat:
        n_labels = len(self.labels)
        return ClassifConfmat(np.zeros((n_labels, n_labels)))

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        n_samples = len(y_true) if y_true.ndim else 1
        weights = self._prepare_sample_weights(s_wght, n_samples)
        if y_pred.ndim > 1:  # scores over labels: one row of scores per sample
            pred_idx = np.argmax(y_pred, axis=-1).reshape(n_samples, -1)[:, 0]
        else:
            pred_idx = self._indices(y_pred)
        true_idx = self._indices(y_true)
        if true_idx.shape != pred_idx.shape:
            raise ValueError(
                f"y_true and y_pred describe different samples: {y_true.shape} vs {y_pred.shape}."
            )
        known = (true_idx >= 0) & (pred_idx >= 0)
        np.add.at(self._states.confmat, (true_idx[known], pred_idx[known]), weights[known])

    def _indices(self, labels: np.ndarray) -> np.ndarray:
        """Position of each label in `self.labels` (-1 for unknown labels)."""
        index = {label: i for i, label in enumerate(self.labels)}
        flat = [index.get(v, -1) for v in labels.reshape(len(labels), -1)[:, 0].tolist()]
        return np.asarray(flat, dtype=np.int64).reshape(len(labels))

    def get_result(self) -> dict[str, float | np.ndarray]:
        confmat = self._states.confmat
        diag = np.diag(confmat)
        precision = _ratio(diag, confmat.sum(axis=0))
        recall = _ratio(diag, confmat.sum(axis=1))
        return {
            "accuracy": _ratio(diag.sum(), confmat.sum()),
            "precision": precision,
            "recall": recall,
            "f-score": _ratio(2 * precision * recall, precision + recall),
            "confusion": confmat.copy(),
        }
