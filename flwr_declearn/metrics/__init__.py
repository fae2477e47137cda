"""Evaluation metrics accumulated over batches of numpy predictions (declearn's API).

`Metric` is the API: `update` with batches, summable `MetricState`s
(`get_states` / `set_states`, aggregated with `+`), `get_result`. Registered
under the "Metric" group, buildable by name with `build_metric` or
`Metric.from_specs`: "mae", "mse" (mean errors, summed over output channels),
"r2" (`RSquared`), "accuracy", "binary-classif" (`BinaryAccuracyPrecisionRecall`),
"multi-classif" (`MulticlassAccuracyPrecisionRecall`), "binary-roc"
(`BinaryRocAUC`). `MeanLoss` wraps a sample-wise loss function such as
`Model.loss_function`; `MetricSet` updates several metrics at once.
"""

from flwr_declearn.metrics._api import Metric, MetricSet, MetricState, build_metric
from flwr_declearn.metrics._classif import (
    BinaryAccuracyPrecisionRecall,
    BinaryConfmat,
    ClassifConfmat,
    MulticlassAccuracyPrecisionRecall,
)
from flwr_declearn.metrics._mean import (
    Accuracy,
    MeanAbsoluteError,
    MeanLoss,
    MeanMetric,
    MeanSquaredError,
    MeanState,
)
from flwr_declearn.metrics._roc import AurocState, AurocStateUnbound, BinaryRocAUC
from flwr_declearn.metrics._rsquared import RSquared, RSquaredState

__all__ = [
    "Accuracy",
    "AurocState",
    "AurocStateUnbound",
    "BinaryAccuracyPrecisionRecall",
    "BinaryConfmat",
    "BinaryRocAUC",
    "ClassifConfmat",
    "MeanAbsoluteError",
    "MeanLoss",
    "MeanMetric",
    "MeanSquaredError",
    "MeanState",
    "Metric",
    "MetricSet",
    "MetricState",
    "MulticlassAccuracyPrecisionRecall",
    "RSquared",
    "RSquaredState",
    "build_metric",
]
