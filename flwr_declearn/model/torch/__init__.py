"""torch backend (needs the 'torch' extra): `TorchVector`."""

from flwr_declearn.utils._imports import require

require("torch", "torch")

from flwr_declearn.model.torch._vector import TorchVector, select_device  # noqa: E402

__all__ = ["TorchVector", "select_device"]
from flwr_declearn.model.torch._model import TorchModel  # noqa: E402

__all__ += ["TorchModel"]
