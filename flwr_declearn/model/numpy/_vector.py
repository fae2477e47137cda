"""Vector of numpy arrays."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from flwr_declearn.model.api._vector import Vector, register_vector_type

__all__ = ["NumpyVector"]


@register_vector_type(np.ndarray)
class NumpyVector(Vector[np.ndarray]):
    """Vector of named numpy arrays (the framework-neutral type)."""

    _xp: ClassVar[Any] = np

    @staticmethod
    def _to_numpy(value: np.ndarray) -> np.ndarray:
        return np.asarray(value)

    @classmethod
    def _from_numpy(cls, array: np.ndarray, like: Any = None) -> np.ndarray:
        return array

    @staticmethod
    def _shape(value: np.ndarray) -> tuple[int, ...]:
        return tuple(np.shape(value))

    @staticmethod
    def _dtype(value: np.ndarray) -> str:
        return np.asarray(value).dtype.name

    @staticmethod
    def _sum(value: np.ndarray) -> np.ndarray:
        return np.asarray(np.sum(value))  # a 0-d array, not a numpy scalar
