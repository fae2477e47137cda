"""ROC curve and its AUC for binary classifiers, from confusion counts per threshold."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Self

import numpy as np

from flwr_declearn.metrics._api import Metric, MetricState
from flwr_declearn.metrics._classif import _binary_inputs, _ratio

__all__ = ["AurocState", "AurocStateUnbound", "BinaryRocAUC"]

_COUNTS = ("tpos", "tneg", "fpos", "fneg")


@dataclasses.dataclass
class AurocState(MetricState):
    """Weighted confusion counts at each of a fixed grid of increasing thresholds."""

    tpos: np.ndarray
    tneg: np.ndarray
    fpos: np.ndarray
    fneg: np.ndarray
    thresh: np.ndarray

    def __add__(self, other: Any) -> Self:
        if not isinstance(other, AurocState):
            return NotImplemented
        self.aggregate_thresh(self.thresh, other.thresh)
        counts = {key: getattr(self, key) + getattr(other, key) for key in _COUNTS}
        return type(self)(**counts, thresh=self.thresh)

    @staticmethod
    def aggregate_thresh(val_a: np.ndarray, val_b: np.ndarray) -> np.ndarray:
        """Thresholds must be the same on both sides.

        Raises
        ------
        ValueError
            If they differ.
        """
        if val_a.shape != val_b.shape or not np.array_equal(val_a, val_b):
            raise ValueError("Cannot aggregate ROC states computed at different thresholds.")
        return val_a

    def prepare_for_secagg(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {key: getattr(self, key) for key in _COUNTS}, {"thresh": self.thresh}


@dataclasses.dataclass
class AurocStateUnbound(AurocState):
    """ROC states whose thresholds may differ: aggregation interpolates on their union."""

    def __add__(self, other: Any) -> Self:
        if not isinstance(other, AurocState):
            return NotImplemented
        if self.thresh.shape == other.thresh.shape and np.array_equal(self.thresh, other.thresh):
            return super().__add__(other)
        thresh = np.union1d(self.thresh, other.thresh)
        mine, theirs = _interpolate(self, thresh), _interpolate(other, thresh)
        return type(self)(**{key: mine[key] + theirs[key] for key in _COUNTS}, thresh=thresh)

    def prepare_for_secagg(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        raise NotImplementedError(
            "ROC states with free thresholds cannot be securely aggregated: "
            "give every peer's BinaryRocAUC the same `bound` and `scale`."
        )


def _interpolate(state: AurocState, thresh: np.ndarray) -> dict[str, np.ndarray]:
    """Counts at `thresh` (a superset of the state's), linear between known thresholds.

    Beyond the state's range, counts are those at its nearest end.
    """
    return {key: np.interp(thresh, state.thresh, getattr(state, key)) for key in _COUNTS}


class BinaryRocAUC(Metric[AurocState]):
    """ROC curve (TPR and FPR by decreasing threshold) and its area, for a binary classifier.

    Samples are predicted positive at each threshold of a grid of step
    `scale`, when their score is `>=` it; `label` marks the positive class.
    Results: "tpr", "fpr", "thresh" (decreasing) and "roc_auc".

    Parameters
    ----------
    scale:
        Step of the thresholds grid.
    label:
        Value of the positive label in `y_true`.
    bound:
        Fixed `(lower, upper)` bounds of the grid: states then aggregate
        only with states on the same grid (and support secure aggregation).
        None (default): the grid starts at `(0, 1)` and grows to cover the
        scores seen, and states on different grids aggregate by interpolation.
    """

    name = "binary-roc"
    state_cls = AurocState

    def __init__(
        self,
        scale: float = 0.1,
        label: int | str = 1,
        bound: tuple[float, float] | None = None,
    ) -> None:
        if not scale > 0:
            raise ValueError(f"'scale' must be positive, not {scale!r}.")
        self.scale = scale
        self.label = label
        self.bound = None if bound is None else (float(bound[0]), float(bound[1]))
        super().__init__()

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "label": self.label, "bound": self.bound}

    @property
    def prec(self) -> int:
        """Decimals kept in threshold values."""
        return max(0, -math.floor(math.log10(self.scale))) + 2

    def _grid(self, lower: float, upper: float) -> np.ndarray:
        start, stop = math.floor(lower / self.scale), math.ceil(upper / self.scale)
        return (np.arange(start, stop + 1) * self.scale).round(self.prec)

    def build_initial_states(self) -> AurocState:
        thresh = self._grid(*(self.bound or (0.0, 1.0)))
        counts = {key: np.zeros_like(thresh) for key in _COUNTS}
        cls = AurocState if self.bound is not None else AurocStateUnbound
        return cls(**counts, thresh=thresh)

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        truth, pred, weights = _binary_inputs(y_true, y_pred, s_wght, self.label, self)
        truth, pred = truth.reshape(-1), pred.reshape(-1)
        weights = np.broadcast_to(weights, (len(weights), pred.size // max(len(weights), 1)))
        weights = weights.reshape(-1)
        if self.bound is None and pred.size:
            low, high = float(pred.min()), float(pred.max())
            if low < self._states.thresh[0] or high > self._states.thresh[-1]:
                grid = self._grid(
                    min(low, self._states.thresh[0]), max(high, self._states.thresh[-1])
                )
                counts = _interpolate(self._states, grid)
                self._states = AurocStateUnbound(**counts, thresh=grid)
        positive = pred[None, :] >= self._states.thresh[:, None]
        st = self._states
        st.tpos = st.tpos + (positive & truth).astype(np.float64) @ weights
        st.tneg = st.tneg + (~positive & ~truth).astype(np.float64) @ weights
        st.fpos = st.fpos + (positive & ~truth).astype(np.float64) @ weights
        st.fneg = st.fneg + (~positive & truth).astype(np.float64) @ weights

    def set_states(self, states: AurocState) -> None:
        """Replace the states; a bounded metric only takes states on its own grid.

        Raises
        ------
        TypeError
            If `states` are not ROC states, or (with `bound`) are on another grid.
        """
        if not isinstance(states, AurocState):
            raise TypeError(f"BinaryRocAUC.set_states expects an AurocState, not {states!r}.")
        if self.bound is not None:
            grid = self.build_initial_states().thresh
            if states.thresh.shape != grid.shape or not np.allclose(states.thresh, grid):
                raise TypeError("These ROC states are not on this bounded metric's thresholds.")
            super().set_states(AurocState(**states.to_dict()))
        else:
            super().set_states(AurocStateUnbound(**states.to_dict()))

    def get_result(self) -> dict[str, float | np.ndarray]:
        st = self._states
        tpos, tneg, fpos, fneg = (getattr(st, key)[::-1] for key in _COUNTS)
        tpr = _ratio(tpos, tpos + fneg)
        fpr = _ratio(fpos, fpos + tneg)
        return {
            "tpr": tpr,
            "fpr": fpr,
            "thresh": st.thresh[::-1].copy(),
            "roc_auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
        }
