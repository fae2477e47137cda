"""Kernels for TensorflowVector: each formula is one `tf.function` call over all tensors."""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf

from flwr_declearn.model.api import Vector
from flwr_declearn.model.tensorflow import TensorflowVector
from flwr_declearn.optimizer._kernels_compiled import CompiledKernels, build_formulas

__all__ = ["Kernels"]


class _TensorflowOps:
    sqrt = staticmethod(tf.sqrt)
    sign = staticmethod(tf.sign)
    maximum = staticmethod(tf.maximum)

    @staticmethod
    def sum_squares(a: Any) -> Any:
        return tf.reduce_sum(a * a)

    @staticmethod
    def cast(scalar: Any, like: Any) -> Any:
        return tf.cast(scalar, like.dtype)


class Kernels(CompiledKernels):
    """Graph-compiled kernels (one trace per Vector layout; scalars are float64 tensors)."""

    vector_type = TensorflowVector
    formulas = {
        name: tf.function(fn, reduce_retracing=True)
        for name, fn in build_formulas(_TensorflowOps()).items()
    }

    _concrete: ClassVar[dict[tuple[Any, ...], Any]] = {}
    """(kernel name, layout) -> concrete function: skips tf.function's per-call dispatch."""

    @classmethod
    def _call(cls, name: str, vec: Vector, *args: Any) -> Vector:
        layout = (name, *((k, tuple(v.shape), v.dtype) for k, v in vec.coefs.items()))
        func = cls._concrete.get(layout)
        if func is None:
            func = cls._concrete[layout] = cls.formulas[name].get_concrete_function(*args)
        out = func(*args)
        return TensorflowVector({k: out[k] for k in vec.coefs})

    @staticmethod
    def scalar(value: float) -> Any:
        return tf.constant(value, dtype=tf.float64)

    @staticmethod
    def zeros_like(vec: TensorflowVector) -> TensorflowVector:  # type: ignore[override]
        return TensorflowVector({k: tf.zeros_like(v) for k, v in vec.coefs.items()})
