"""JAX backend (needs the 'haiku' extra): `JaxNumpyVector`, `HaikuModel`.

The plain-JAX `JaxModel` lives in `flwr_declearn.model.jax`.
"""

from typing import Any

from flwr_declearn.utils._imports import require

require("jax", "haiku")
from flwr_declearn.model.haiku._vector import JaxNumpyVector, select_device  # noqa: E402

__all__ = ["HaikuModel", "JaxNumpyVector", "select_device"]


def __getattr__(name: str) -> Any:
    """Import `HaikuModel` on first access (it needs dm-haiku; the Vector only jax)."""
    if name == "HaikuModel":
        require("haiku", "haiku")
        from flwr_declearn.model.haiku._model import HaikuModel

        return HaikuModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
