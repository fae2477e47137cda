"""haiku backend (needs the 'haiku' extra): `JaxNumpyVector`."""

from flwr_declearn.utils._imports import require

require("jax", "haiku")
require("haiku", "haiku")
from flwr_declearn.model.haiku._vector import JaxNumpyVector, select_device  # noqa: E402

__all__ = ["JaxNumpyVector", "select_device"]
from flwr_declearn.model.haiku._model import HaikuModel  # noqa: E402

__all__ += ["HaikuModel"]
