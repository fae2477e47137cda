"""Framework-agnostic Model and Vector APIs."""

from flwr_declearn.model.api._model import Model
from flwr_declearn.model.api._vector import (
    Vector,
    VectorNamesError,
    VectorSpec,
    VectorSpecError,
    check_names,
    load_vector_type,
    register_vector_type,
)

__all__ = [
    "Model",
    "Vector",
    "VectorNamesError",
    "VectorSpec",
    "VectorSpecError",
    "check_names",
    "load_vector_type",
    "register_vector_type",
]
