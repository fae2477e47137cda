"""Fused element-wise Vector operations shared by optimizer plug-ins.

Each function computes one small formula on Vectors. The generic version is
written with Vector algebra and works for every Vector type. Torch gets fused
`torch._foreach_*` versions (`_kernels_torch.py`); jax and tensorflow get one
compiled call per formula (`_kernels_compiled.py`). Results agree to rounding
error. Operands of mixed types or specs go through the generic version, which
converts NumpyVectors or raises a `VectorSpecError`.

Kernels never modify their inputs, except the private accumulator passed to
`accumulate`, so modules may return their state Vectors safely. An output may
share arrays with an input (e.g. gradients below a clipping threshold).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector

__all__ = [
    "accumulate",
    "adam_step",
    "adaptive_scale",
    "add_noise",
    "add_squared",
    "aligned",
    "axpy",
    "clip_by_global_norm",
    "clip_by_norm",
    "ewma",
    "ewma_squared",
    "scale",
    "square",
    "yogi_ewma",
    "zeros_like",
]


def aligned(vec: Vector, *others: Any) -> bool:
    """Whether `others` are Vectors of `vec`'s type with the same names, shapes and dtypes."""
    coefs = vec.coefs
    for other in others:
        if type(other) is not type(vec) or coefs.keys() != other.coefs.keys():
            return False
        ocoefs = other.coefs
        for key, val in coefs.items():
            oth = ocoefs[key]
            if val.shape != oth.shape or val.dtype != oth.dtype:
                return False
    return True


class GenericKernels:
    """Kernels written with Vector algebra (valid for every Vector type)."""

    @staticmethod
    def zeros_like(vec: Vector) -> Vector:
        coefs = {
            key: vec._from_numpy(np.zeros(vec._shape(val), vec._dtype(val)), like=val)
            for key, val in vec.coefs.items()
        }
        return type(vec)(coefs)

    @staticmethod
    def scale(vec: Vector, factor: float) -> Vector:
        return vec * factor

    @staticmethod
    def square(vec: Vector) -> Vector:
        return vec * vec

    @staticmethod
    def ewma(state: Vector, x: Vector, beta: float) -> Vector:
        return state * beta + x * (1.0 - beta)

    @staticmethod
    def ewma_squared(state: Vector, x: Vector, beta: float) -> Vector:
        return state * beta + (x * x) * (1.0 - beta)

    @staticmethod
    def axpy(alpha: float, x: Vector, y: Vector) -> Vector:
        return x * alpha + y

    @staticmethod
    def yogi_ewma(state: Vector, x: Vector, beta: float) -> Vector:
        return state - (state - x).sign() * x * (1.0 - beta)

    @staticmethod
    def adaptive_scale(
        num: Vector, sq: Vector, eps: float, num_div: float, sq_div: float
    ) -> Vector:
        if num_div != 1.0:
            num = num / num_div
        if sq_div != 1.0:
            sq = sq / sq_div
        return num / (sq.sqrt() + eps)

    @classmethod
    def adam_step(
        cls,
        m: Vector,
        v: Vector,
        g: Vector,
        beta_1: float,
        beta_2: float,
        eps: float,
        step: int,
        yogi: bool,
    ) -> tuple[Vector, Vector, Vector]:
        m = cls.ewma(m, g, beta_1)
        v = cls.yogi_ewma(v, cls.square(g), beta_2) if yogi else cls.ewma_squared(v, g, beta_2)
        out = cls.adaptive_scale(m, v, eps, 1.0 - beta_1**step, 1.0 - beta_2**step)
        return m, v, out

    @staticmethod
    def add_squared(state: Vector, x: Vector) -> Vector:
        return state + x * x

    @staticmethod
    def accumulate(acc: Vector, x: Vector) -> Vector:
        return acc + x

    @staticmethod
    def add_noise(vec: Vector, noise: dict[str, np.ndarray]) -> Vector:
        dtypes = vec.dtypes()
        cast = {key: val.astype(dtypes[key], copy=False) for key, val in noise.items()}
        return vec + NumpyVector(cast)

    @staticmethod
    def clip_by_norm(vec: Vector, max_norm: float) -> Vector:
        coefs: dict[str, Any] = {}
        for key, val in vec.coefs.items():
            norm = vec._vdot(val, val) ** 0.5
            coefs[key] = val * (max_norm / norm) if norm > max_norm else val
        return type(vec)(coefs)

    @staticmethod
    def clip_by_global_norm(vec: Vector, max_norm: float) -> Vector:
        norm = vec.norm()
        return vec * (max_norm / norm) if norm > max_norm else vec


_FAST_KERNELS: dict[str, str] = {
    "TorchVector": "flwr_declearn.optimizer._kernels_torch",
    "JaxNumpyVector": "flwr_declearn.optimizer._kernels_jax",
    "TensorflowVector": "flwr_declearn.optimizer._kernels_tensorflow",
}
"""Vector type name -> module exposing a `Kernels` class for that type."""

_RESOLVED: dict[type, Any] = {}


def _kernels(vec: Vector) -> Any:
    typ = type(vec)
    kern = _RESOLVED.get(typ)
    if kern is None:
        module = _FAST_KERNELS.get(typ.__name__)
        kern = GenericKernels
        if module is not None:
            kern = importlib.import_module(module).Kernels
            if not isinstance(vec, kern.vector_type):
                kern = GenericKernels
        _RESOLVED[typ] = kern
    return kern


def zeros_like(vec: Vector) -> Vector:
    """Return zeros with the specs and device placement of `vec`."""
    return _kernels(vec).zeros_like(vec)  # type: ignore[no-any-return]


def scale(vec: Vector, factor: float) -> Vector:
    """Return `factor * vec`."""
    return _kernels(vec).scale(vec, factor)  # type: ignore[no-any-return]


def square(vec: Vector) -> Vector:
    """Return `vec ** 2`."""
    return _kernels(vec).square(vec)  # type: ignore[no-any-return]


def ewma(state: Vector, x: Vector, beta: float) -> Vector:
    """Return `beta * state + (1 - beta) * x`."""
    return _kernels(state).ewma(state, x, beta)  # type: ignore[no-any-return]


def ewma_squared(state: Vector, x: Vector, beta: float) -> Vector:
    """Return `beta * state + (1 - beta) * x ** 2`."""
    return _kernels(state).ewma_squared(state, x, beta)  # type: ignore[no-any-return]


def axpy(alpha: float, x: Vector, y: Vector) -> Vector:
    """Return `alpha * x + y`."""
    return _kernels(x).axpy(alpha, x, y)  # type: ignore[no-any-return]


def yogi_ewma(state: Vector, x: Vector, beta: float) -> Vector:
    """Return `state - (1 - beta) * sign(state - x) * x` (Yogi's additive update)."""
    return _kernels(state).yogi_ewma(state, x, beta)  # type: ignore[no-any-return]


def adaptive_scale(
    num: Vector, sq: Vector, eps: float, num_div: float = 1.0, sq_div: float = 1.0
) -> Vector:
    """Return `(num / num_div) / (sqrt(sq / sq_div) + eps)`."""
    return _kernels(num).adaptive_scale(num, sq, eps, num_div, sq_div)  # type: ignore[no-any-return]


def adam_step(
    m: Vector,
    v: Vector,
    g: Vector,
    beta_1: float,
    beta_2: float,
    eps: float,
    step: int,
    yogi: bool = False,
) -> tuple[Vector, Vector, Vector]:
    """Return `(m_t, v_t, out)` for Adam's (or Yogi's) step number `step` (from 1).

        m_t = beta_1 * m + (1 - beta_1) * g
        v_t = beta_2 * v + (1 - beta_2) * g ** 2                    # Adam
        v_t = v - (1 - beta_2) * sign(v - g ** 2) * g ** 2          # Yogi
        out = (m_t / (1 - beta_1 ** step)) / (sqrt(v_t / (1 - beta_2 ** step)) + eps)

    Equals `ewma`, `ewma_squared` (or `yogi_ewma` of `square`) and
    `adaptive_scale` in a row, in one compiled call where possible.
    """
    return _kernels(m).adam_step(m, v, g, beta_1, beta_2, eps, step, yogi)  # type: ignore[no-any-return]


def add_squared(state: Vector, x: Vector) -> Vector:
    """Return `state + x ** 2`."""
    return _kernels(state).add_squared(state, x)  # type: ignore[no-any-return]


def add_noise(vec: Vector, noise: dict[str, np.ndarray]) -> Vector:
    """Return `vec + noise`, for float64 numpy `noise` arrays named as `vec`'s arrays."""
    return _kernels(vec).add_noise(vec, noise)  # type: ignore[no-any-return]


def accumulate(acc: Vector, x: Vector) -> Vector:
    """Return `acc + x`, possibly by modifying `acc` in place (it must be private)."""
    return _kernels(acc).accumulate(acc, x)  # type: ignore[no-any-return]


def clip_by_norm(vec: Vector, max_norm: float) -> Vector:
    """Scale each array whose L2 norm exceeds `max_norm` down to that norm."""
    return _kernels(vec).clip_by_norm(vec, max_norm)  # type: ignore[no-any-return]


def clip_by_global_norm(vec: Vector, max_norm: float) -> Vector:
    """Scale all arrays alike so that their joint L2 norm is at most `max_norm`."""
    return _kernels(vec).clip_by_global_norm(vec, max_norm)  # type: ignore[no-any-return]
