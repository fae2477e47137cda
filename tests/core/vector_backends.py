"""The Vector types available in this environment, for parametrized tests."""

from __future__ import annotations

import importlib.util

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector

__all__ = ["FRAMEWORK_VECTORS", "VECTOR_TYPES"]

_BACKENDS = {
    "torch": ("flwr_declearn.model.torch", "TorchVector"),
    "tensorflow": ("flwr_declearn.model.tensorflow", "TensorflowVector"),
    "jax": ("flwr_declearn.model.haiku", "JaxNumpyVector"),
}


def _load() -> list[type[Vector]]:
    types: list[type[Vector]] = []
    for framework, (module, name) in _BACKENDS.items():
        if importlib.util.find_spec(framework) is None:
            continue
        types.append(getattr(importlib.import_module(module), name))
    return types


FRAMEWORK_VECTORS: list[type[Vector]] = _load()
VECTOR_TYPES: list[type[Vector]] = [NumpyVector, *FRAMEWORK_VECTORS]
