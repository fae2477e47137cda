"""R-squared (coefficient of determination) from summable weighted moments."""

from __future__ import annotations

import dataclasses

import numpy as np

from flwr_declearn.metrics._api import Metric, MetricState, squeeze_into_identical_shapes

__all__ = ["RSquared", "RSquaredState"]


@dataclasses.dataclass
class RSquaredState(MetricState):
    """Weighted sums of squared errors, squared labels, labels and weights."""

    sum_of_squared_errors: float = 0.0
    sum_of_squared_labels: float = 0.0
    sum_of_labels: float = 0.0
    sum_of_weights: float = 0.0


class RSquared(Metric[RSquaredState]):
    """R^2 = 1 - SSE / SST, with SST = sum w y^2 - (sum w y)^2 / sum w (weighted).

    0 before any sample, or when the labels are constant but predictions
    err; 1 when labels are constant and predicted exactly.
    """

    name = "r2"
    state_cls = RSquaredState

    def build_initial_states(self) -> RSquaredState:
        return RSquaredState()

    def update(
        self, y_true: np.ndarray, y_pred: np.ndarray, s_wght: np.ndarray | None = None
    ) -> None:
        y_true, y_pred = squeeze_into_identical_shapes(y_true, y_pred)
        y_true, y_pred = y_true.astype(np.float64), y_pred.astype(np.float64)
        n_samples = len(y_true) if y_true.ndim else 1
        weights = self._prepare_sample_weights(s_wght, n_samples)
        per_sample = (n_samples, -1)
        sq_err = np.square(y_true - y_pred).reshape(per_sample).sum(axis=1)
        sq_lab = np.square(y_true).reshape(per_sample).sum(axis=1)
        labels = y_true.reshape(per_sample).sum(axis=1)
        w_sum = float(np.sum(weights))
        # sum(w * e) written as w_sum * weighted-mean(e), as scikit-learn's MSE rounds it
        sse = w_sum * (np.sum(weights * sq_err) / w_sum) if w_sum else 0.0
        self._states.sum_of_squared_errors += float(sse)
        self._states.sum_of_squared_labels += float(np.sum(weights * sq_lab))
        self._states.sum_of_labels += float(np.sum(weights * labels))
        self._states.sum_of_weights += w_sum

    def get_result(self) -> dict[str, float | np.ndarray]:
        st = self._states
        if not st.sum_of_weights:
            return {self.name: 0.0}
        total = st.sum_of_squared_labels - st.sum_of_labels**2 / st.sum_of_weights
        if total == 0.0:
            return {self.name: 1.0 if st.sum_of_squared_errors == 0.0 else 0.0}
        return {self.name: 1.0 - st.sum_of_squared_errors / total}
