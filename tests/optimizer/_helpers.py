"""Shared test helpers: backends, random gradient sequences, declearn conversions, closeness."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector

__all__ = [
    "SHAPES",
    "VECTOR_TYPES",
    "assert_close",
    "declearn_vector",
    "gradient_sequence",
    "ours",
    "to_numpy",
    "vector_types",
]

RTOL = 1e-6

_BACKENDS = {
    "torch": ("flwr_declearn.model.torch", "TorchVector"),
    "tensorflow": ("flwr_declearn.model.tensorflow", "TensorflowVector"),
    "jax": ("flwr_declearn.model.haiku", "JaxNumpyVector"),
}
VECTOR_TYPES: list[type[Vector]] = [NumpyVector] + [
    getattr(importlib.import_module(module), name)
    for framework, (module, name) in _BACKENDS.items()
    if importlib.util.find_spec(framework) is not None
]
"""Our Vector types whose framework is installed."""

SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "dense": {"kernel": (4, 3), "bias": (3,)},
    "mixed": {"conv": (2, 3, 2, 2), "scalar": (), "vec": (7,)},
}
"""Named gradient layouts used by oracle tests."""

vector_types = pytest.mark.parametrize(
    "vtype", VECTOR_TYPES, ids=[t.__name__ for t in VECTOR_TYPES]
)


def gradient_sequence(
    shapes: dict[str, tuple[int, ...]], steps: int = 20, seed: int = 0, scale: float = 1.0
) -> list[dict[str, np.ndarray]]:
    """Return `steps` dicts of float64 random arrays with the given shapes."""
    rng = np.random.default_rng(seed)
    return [
        {k: scale * rng.standard_normal(s) * rng.uniform(0.1, 3.0) for k, s in shapes.items()}
        for _ in range(steps)
    ]


def ours(vtype: type[Vector], arrays: dict[str, np.ndarray]) -> Vector:
    """Wrap numpy arrays into one of our Vector types (fresh copies)."""
    return vtype.unpack({k: np.array(v, copy=True) for k, v in arrays.items()})


def declearn_vector(arrays: dict[str, np.ndarray]) -> Any:
    """Wrap numpy arrays into declearn's NumpyVector (the oracle runs on numpy)."""
    from declearn.model.sklearn import NumpyVector

    return NumpyVector({k: np.array(v, copy=True) for k, v in arrays.items()})


def to_numpy(vec: Any) -> dict[str, np.ndarray]:
    """Return the arrays of one of our Vectors or of a declearn Vector as numpy arrays."""
    if isinstance(vec, Vector):
        return {k: np.asarray(v) for k, v in vec.pack().items()}
    return {k: np.asarray(v) for k, v in vec.coefs.items()}


def assert_close(actual: Any, expected: Any, rtol: float = RTOL) -> None:
    """Assert that two Vectors (ours or declearn's) agree to `rtol` relative error.

    Each element must satisfy `|a - e| <= rtol * |e| + rtol * 1e-6 * max|e|`
    (relative error, with a floor far below the array's magnitude for
    entries that are nearly zero).
    """
    act, exp = to_numpy(actual), to_numpy(expected)
    assert act.keys() == exp.keys()
    for key in exp:
        a, e = act[key], exp[key]
        assert a.shape == e.shape, key
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-6 * scale, err_msg=key)
