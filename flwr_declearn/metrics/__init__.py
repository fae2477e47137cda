"""Evaluation metrics accumulated over batches of numpy predictions.

`Metric` is the API (summable states, `update` / `get_result`); `Accuracy`
("accuracy"), `MeanSquaredError` ("mse") and `MeanAbsoluteError` ("mae") are
registered under the "Metric" group and buildable by name with `build_metric`;
`MeanLoss` wraps a sample-wise loss function such as `Model.loss_function`.
"""

from flwr_declearn.metrics._api import Metric, MetricSet, build_metric
from flwr_declearn.metrics._metrics import Accuracy, MeanAbsoluteError, MeanLoss, MeanSquaredError

__all__ = [
    "Accuracy",
    "MeanAbsoluteError",
    "MeanLoss",
    "MeanSquaredError",
    "Metric",
    "MetricSet",
    "build_metric",
]
