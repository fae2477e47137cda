"""Jax backend: each step is one `jax.jit`-compiled call over all its arrays (traced per layout)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flwr_declearn.model.haiku import JaxNumpyVector
from flwr_declearn.optimizer._arrays import ArrayOps, CompiledBackend, Hyper, Step

__all__ = ["JaxBackend"]


class _JaxOps(ArrayOps):
    def cast(self, scalar: Any, like: Any) -> Any:
        return scalar if type(scalar) in (int, float) else jnp.asarray(scalar).astype(like.dtype)


class JaxBackend(CompiledBackend):
    """Steps compiled with `jax.jit`, their scalars given as one array (no retrace per value)."""

    vector_type = JaxNumpyVector

    def __init__(self, vector_type: type[JaxNumpyVector]) -> None:
        super().__init__(vector_type)
        self.ops = _JaxOps(vector_type)
        self._compiled: dict[tuple[Step, tuple[str, ...]], Any] = {}

    def apply(
        self, step: Step, states: tuple[dict[str, Any], ...], grads: dict[str, Any], hyper: Hyper
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        key = (step, tuple(hyper))
        func = self._compiled.get(key)
        if func is None:
            func = self._compiled[key] = jax.jit(self._traced(step, key[1]))
        new, out = func(states, grads, self.scalar_array(list(hyper.values())))
        return tuple({k: n[k] for k in grads} for n in new), {k: out[k] for k in grads}

    def _traced(self, step: Step, names: tuple[str, ...]) -> Any:
        def apply(states: Any, grads: Any, values: Any) -> Any:
            hyper = {name: values[i] for i, name in enumerate(names)}
            return super(JaxBackend, self).apply(step, states, grads, hyper)

        return apply
