"""Kernels compiled once per Vector layout, for frameworks with a graph compiler (jax, tensorflow).

Eager jax and tensorflow pay a dispatch per array operation, so a formula on
a many-array Vector costs dozens of dispatches. Here each kernel is one
compiled function over the whole dict of arrays (`jax.jit`, `tf.function`):
one dispatch per formula, and fused arithmetic where the compiler can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._kernels import GenericKernels, aligned

__all__ = ["ArrayOps", "CompiledKernels", "build_formulas"]

Arrays = dict[str, Any]


class ArrayOps(Protocol):
    """Array primitives used by the formulas (framework-specific)."""

    def sqrt(self, a: Any) -> Any: ...
    def sign(self, a: Any) -> Any: ...
    def maximum(self, a: Any, b: Any) -> Any: ...
    def sum_squares(self, a: Any) -> Any: ...
    def cast(self, scalar: Any, like: Any) -> Any:
        """Return a scalar usable in arithmetic with `like` (keeping `like`'s dtype)."""
        ...


def build_formulas(ops: ArrayOps) -> dict[str, Callable[..., Arrays | tuple[Arrays, ...]]]:
    """Return the dict-of-arrays version of each kernel, to be compiled."""

    def scale(vec: Arrays, factor: Any) -> Arrays:
        return {k: a * ops.cast(factor, a) for k, a in vec.items()}

    def square(vec: Arrays) -> Arrays:
        return {k: a * a for k, a in vec.items()}

    def ewma(state: Arrays, x: Arrays, beta: Any) -> Arrays:
        return {k: s * ops.cast(beta, s) + x[k] * ops.cast(1.0 - beta, s) for k, s in state.items()}

    def ewma_squared(state: Arrays, x: Arrays, beta: Any) -> Arrays:
        return {
            k: s * ops.cast(beta, s) + (x[k] * x[k]) * ops.cast(1.0 - beta, s)
            for k, s in state.items()
        }

    def axpy(alpha: Any, x: Arrays, y: Arrays) -> Arrays:
        return {k: a * ops.cast(alpha, a) + y[k] for k, a in x.items()}

    def yogi_ewma(state: Arrays, x: Arrays, beta: Any) -> Arrays:
        return {
            k: s - ops.sign(s - x[k]) * x[k] * ops.cast(1.0 - beta, s) for k, s in state.items()
        }

    def adaptive_scale(num: Arrays, sq: Arrays, eps: Any, num_div: Any, sq_div: Any) -> Arrays:
        return {
            k: (a / ops.cast(num_div, a))
            / (ops.sqrt(sq[k] / ops.cast(sq_div, a)) + ops.cast(eps, a))
            for k, a in num.items()
        }

    def adam_step(
        m: Arrays, v: Arrays, g: Arrays, beta_1: Any, beta_2: Any, eps: Any, div_1: Any, div_2: Any
    ) -> tuple[Arrays, Arrays, Arrays]:
        m = ewma(m, g, beta_1)
        v = ewma_squared(v, g, beta_2)
        return m, v, adaptive_scale(m, v, eps, div_1, div_2)

    def yogi_step(
        m: Arrays, v: Arrays, g: Arrays, beta_1: Any, beta_2: Any, eps: Any, div_1: Any, div_2: Any
    ) -> tuple[Arrays, Arrays, Arrays]:
        m = ewma(m, g, beta_1)
        v = yogi_ewma(v, square(g), beta_2)
        return m, v, adaptive_scale(m, v, eps, div_1, div_2)

    def add_squared(state: Arrays, x: Arrays) -> Arrays:
        return {k: s + x[k] * x[k] for k, s in state.items()}

    def accumulate(acc: Arrays, x: Arrays) -> Arrays:
        return {k: a + x[k] for k, a in acc.items()}

    def clip_by_norm(vec: Arrays, max_norm: Any) -> Arrays:
        out = {}
        for k, a in vec.items():
            bound = ops.cast(max_norm, a)
            out[k] = a * (bound / ops.maximum(ops.sqrt(ops.sum_squares(a)), bound))
        return out

    def clip_by_global_norm(vec: Arrays, max_norm: Any) -> Arrays:
        first = next(iter(vec.values()))
        total = sum(ops.cast(ops.sum_squares(a), first) for a in vec.values())
        bound = ops.cast(max_norm, first)
        factor = bound / ops.maximum(ops.sqrt(total), bound)
        return {k: a * ops.cast(factor, a) for k, a in vec.items()}

    # One-pass steps of stateful modules, for compiled training steps (see `_fused.py`):
    # `step(*states, g, *scalars) -> (*new_states, out)`.

    def ewma_step(state: Arrays, g: Arrays, beta: Any) -> tuple[Arrays, Arrays]:
        state = ewma(state, g, beta)
        return state, state

    def yogi_ewma_step(state: Arrays, g: Arrays, beta: Any) -> tuple[Arrays, Arrays]:
        state = yogi_ewma(state, g, beta)
        return state, state

    def momentum_step(velocity: Arrays, g: Arrays, beta: Any) -> tuple[Arrays, Arrays]:
        velocity = axpy(beta, velocity, g)
        return velocity, velocity

    def nesterov_step(velocity: Arrays, g: Arrays, beta: Any) -> tuple[Arrays, Arrays]:
        velocity = axpy(beta, velocity, g)
        return velocity, axpy(beta, velocity, g)

    def rmsprop_step(state: Arrays, g: Arrays, beta: Any, eps: Any) -> tuple[Arrays, Arrays]:
        state = ewma_squared(state, g, beta)
        return state, adaptive_scale(g, state, eps, 1.0, 1.0)

    def adagrad_step(state: Arrays, g: Arrays, eps: Any) -> tuple[Arrays, Arrays]:
        state = add_squared(state, g)
        return state, adaptive_scale(g, state, eps, 1.0, 1.0)

    def accumulate_step(acc: Arrays, g: Arrays) -> tuple[Arrays, Arrays]:
        return accumulate(acc, g), g

    def scaffold_step(acc: Arrays, delta: Arrays, g: Arrays) -> tuple[Arrays, Arrays, Arrays]:
        """Accumulate `g`; output `g - delta` (`delta = c_i - c` is returned unchanged)."""
        return accumulate(acc, g), delta, {k: a - delta[k] for k, a in g.items()}

    def descend(weights: Arrays, direction: Arrays, lrate: Any) -> Arrays:
        """`w - lrate * d`, in the weights' dtypes."""
        return {k: w - direction[k] * ops.cast(lrate, w) for k, w in weights.items()}

    def descend_decay(weights: Arrays, direction: Arrays, lrate: Any, wrate: Any) -> Arrays:
        """`w - (lrate * d + wrate * w)`, in the weights' dtypes."""
        return {
            k: w + (direction[k] * ops.cast(-lrate, w) + w * ops.cast(-wrate, w))
            for k, w in weights.items()
        }

    return {
        "ewma_step": ewma_step,
        "yogi_ewma_step": yogi_ewma_step,
        "momentum_step": momentum_step,
        "nesterov_step": nesterov_step,
        "rmsprop_step": rmsprop_step,
        "adagrad_step": adagrad_step,
        "accumulate_step": accumulate_step,
        "scaffold_step": scaffold_step,
        "descend": descend,
        "descend_decay": descend_decay,
        "scale": scale,
        "square": square,
        "ewma": ewma,
        "ewma_squared": ewma_squared,
        "axpy": axpy,
        "yogi_ewma": yogi_ewma,
        "adaptive_scale": adaptive_scale,
        "adam_step": adam_step,
        "yogi_step": yogi_step,
        "add_squared": add_squared,
        "accumulate": accumulate,
        "clip_by_norm": clip_by_norm,
        "clip_by_global_norm": clip_by_global_norm,
    }


class CompiledKernels(GenericKernels):
    """Kernels calling compiled dict-level formulas; subclasses set the class attributes."""

    vector_type: type[Vector]
    formulas: Mapping[str, Any]
    """Compiled versions of `build_formulas`' functions."""

    @staticmethod
    def scalar(value: float) -> Any:
        """Turn a python float into a compiled-function argument (no retracing per value)."""
        return value

    @staticmethod
    def scalar_array(values: list[float]) -> Any:
        """Turn python floats into one 1-d float64 compiled-function argument."""
        return np.asarray(values, dtype=np.float64)

    @classmethod
    def _call(cls, name: str, vec: Vector, *args: Any) -> Vector:
        out = cls.formulas[name](*args)
        return cls.vector_type({k: out[k] for k in vec.coefs})  # keep the names' order

    @classmethod
    def _call_many(cls, name: str, vec: Vector, *args: Any) -> tuple[Vector, ...]:
        """As `_call`, for a formula returning a tuple of dicts."""
        outs = cls.formulas[name](*args)
        return tuple(cls.vector_type({k: out[k] for k in vec.coefs}) for out in outs)

    @classmethod
    def scale(cls, vec: Vector, factor: float) -> Vector:  # type: ignore[override]
        return cls._call("scale", vec, vec.coefs, cls.scalar(factor))

    @classmethod
    def square(cls, vec: Vector) -> Vector:  # type: ignore[override]
        return cls._call("square", vec, vec.coefs)

    @classmethod
    def ewma(cls, state: Vector, x: Vector, beta: float) -> Vector:  # type: ignore[override]
        if not aligned(state, x):
            return GenericKernels.ewma(state, x, beta)
        return cls._call("ewma", state, state.coefs, x.coefs, cls.scalar(beta))

    @classmethod
    def ewma_squared(cls, state: Vector, x: Vector, beta: float) -> Vector:  # type: ignore[override]
        if not aligned(state, x):
            return GenericKernels.ewma_squared(state, x, beta)
        return cls._call("ewma_squared", state, state.coefs, x.coefs, cls.scalar(beta))

    @classmethod
    def axpy(cls, alpha: float, x: Vector, y: Vector) -> Vector:  # type: ignore[override]
        if not aligned(x, y):
            return GenericKernels.axpy(alpha, x, y)
        return cls._call("axpy", x, cls.scalar(alpha), x.coefs, y.coefs)

    @classmethod
    def yogi_ewma(cls, state: Vector, x: Vector, beta: float) -> Vector:  # type: ignore[override]
        if not aligned(state, x):
            return GenericKernels.yogi_ewma(state, x, beta)
        return cls._call("yogi_ewma", state, state.coefs, x.coefs, cls.scalar(beta))

    @classmethod
    def adaptive_scale(  # type: ignore[override]
        cls, num: Vector, sq: Vector, eps: float, num_div: float, sq_div: float
    ) -> Vector:
        if not aligned(num, sq):
            return GenericKernels.adaptive_scale(num, sq, eps, num_div, sq_div)
        scalars = (cls.scalar(eps), cls.scalar(num_div), cls.scalar(sq_div))
        return cls._call("adaptive_scale", num, num.coefs, sq.coefs, *scalars)

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
        if not aligned(g, m, v):
            return GenericKernels.adam_step(m, v, g, beta_1, beta_2, eps, step, yogi)
        scalars = [beta_1, beta_2, eps, 1.0 - beta_1**step, 1.0 - beta_2**step]
        name = "yogi_step" if yogi else "adam_step"
        args = (m.coefs, v.coefs, g.coefs, *map(cls.scalar, scalars))
        m, v, out = cls._call_many(name, g, *args)
        return m, v, out

    @classmethod
    def add_squared(cls, state: Vector, x: Vector) -> Vector:  # type: ignore[override]
        if not aligned(state, x):
            return GenericKernels.add_squared(state, x)
        return cls._call("add_squared", state, state.coefs, x.coefs)

    @classmethod
    def accumulate(cls, acc: Vector, x: Vector) -> Vector:  # type: ignore[override]
        if not aligned(acc, x):
            return GenericKernels.accumulate(acc, x)
        return cls._call("accumulate", acc, acc.coefs, x.coefs)

    @classmethod
    def clip_by_norm(cls, vec: Vector, max_norm: float) -> Vector:  # type: ignore[override]
        if not vec.coefs:
            return vec
        return cls._call("clip_by_norm", vec, vec.coefs, cls.scalar(max_norm))

    @classmethod
    def clip_by_global_norm(cls, vec: Vector, max_norm: float) -> Vector:  # type: ignore[override]
        if not vec.coefs:
            return vec
        return cls._call("clip_by_global_norm", vec, vec.coefs, cls.scalar(max_norm))
