"""tensorflow backend (needs the 'tensorflow' extra): `TensorflowVector`, `TensorflowModel`."""

from flwr_declearn.utils._imports import require

require("tensorflow", "tensorflow")

from flwr_declearn.model.tensorflow._vector import TensorflowVector, select_device  # noqa: E402

__all__ = ["TensorflowVector", "select_device"]
from flwr_declearn.model.tensorflow._loss import build_keras_loss  # noqa: E402
from flwr_declearn.model.tensorflow._model import TensorflowModel  # noqa: E402

__all__ += ["TensorflowModel", "build_keras_loss"]
