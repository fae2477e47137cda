"""Kernels for JaxNumpyVector: each formula is one `jax.jit`-compiled call over all arrays."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flwr_declearn.model.haiku import JaxNumpyVector
from flwr_declearn.optimizer._kernels_compiled import CompiledKernels, build_formulas

__all__ = ["Kernels"]


class _JaxOps:
    sqrt = staticmethod(jnp.sqrt)
    sign = staticmethod(jnp.sign)
    maximum = staticmethod(jnp.maximum)

    @staticmethod
    def sum_squares(a: Any) -> Any:
        return jnp.sum(a * a)

    @staticmethod
    def cast(scalar: Any, like: Any) -> Any:
        return jnp.asarray(scalar).astype(like.dtype)


class Kernels(CompiledKernels):
    """jit-compiled kernels (one trace per Vector layout, cached by jax)."""

    vector_type = JaxNumpyVector
    formulas = {name: jax.jit(fn) for name, fn in build_formulas(_JaxOps()).items()}

    @staticmethod
    def zeros_like(vec: JaxNumpyVector) -> JaxNumpyVector:  # type: ignore[override]
        return JaxNumpyVector({k: jnp.zeros_like(v) for k, v in vec.coefs.items()})
