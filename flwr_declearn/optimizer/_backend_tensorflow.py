"""Tensorflow backend: each step is one XLA-compiled graph-function call over all its tensors.

Calling a `tf.function`, or even one of its concrete functions, binds and
flattens the structured arguments on every call, which costs more than the
arithmetic on small models. Each step is therefore traced once per layout
as a function of a flat list of tensors, and its graph function is called
with that flat list (`ConcreteFunction.inference_fn.call_flat`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from flwr_declearn.model.tensorflow import TensorflowVector
from flwr_declearn.model.tensorflow._vector import eager_tensor
from flwr_declearn.optimizer._arrays import ArrayOps, Backend, CompiledBackend, Hyper, Step

__all__ = ["TensorflowBackend"]

Flat = Callable[..., list[tf.Tensor]]


class _TensorflowOps(ArrayOps):
    def cast(self, scalar: Any, like: Any) -> Any:
        return scalar if type(scalar) in (int, float) else tf.cast(scalar, like.dtype)


class TensorflowBackend(CompiledBackend):
    """Steps traced per layout into XLA-compiled graphs; scalars are one float64 tensor."""

    vector_type = TensorflowVector

    def __init__(self, vector_type: type[TensorflowVector]) -> None:
        super().__init__(vector_type)
        self.ops = _TensorflowOps(vector_type)
        self._graphs: dict[tuple[Any, ...], Flat] = {}

    def scalar_array(self, values: list[float]) -> Any:
        return eager_tensor(np.asarray(values, dtype=np.float64))

    def apply(
        self, step: Step, states: tuple[dict[str, Any], ...], grads: dict[str, Any], hyper: Hyper
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        keys = list(grads)
        layout = (
            step,
            tuple(hyper),
            len(states),
            *((k, v.shape, v.dtype) for k, v in grads.items()),
        )
        func = self._graphs.get(layout)
        if func is None:
            func = self._graphs[layout] = self._graph(step, tuple(hyper), len(states), grads)
        flat = [s[k] for s in (*states, grads) for k in keys]
        # Graph functions take tensors only: read the Variables a Vector may hold.
        flat = [v.read_value() if isinstance(v, tf.Variable) else v for v in flat]
        out = func(*flat, self.scalar_array(list(hyper.values())))
        size = len(keys)
        dicts = [dict(zip(keys, out[i : i + size], strict=True)) for i in range(0, len(out), size)]
        return tuple(dicts[:-1]), dicts[-1]

    def _graph(
        self, step: Step, names: tuple[str, ...], n_states: int, grads: dict[str, Any]
    ) -> Flat:
        keys, size = list(grads), len(grads)
        specs = [tf.TensorSpec(v.shape, v.dtype) for v in grads.values()] * (n_states + 1)
        specs.append(tf.TensorSpec((len(names),), tf.float64))

        def flat_step(*flat: tf.Tensor) -> list[tf.Tensor]:
            dicts = [
                dict(zip(keys, flat[i : i + size], strict=True))
                for i in range(0, len(flat) - 1, size)
            ]
            hyper = {name: flat[-1][i] for i, name in enumerate(names)}
            new, out = Backend.apply(self, step, tuple(dicts[:-1]), dicts[-1], hyper)
            return [d[k] for d in (*new, out) for k in keys]

        concrete = tf.function(flat_step, jit_compile=True).get_concrete_function(*specs)
        # `call_flat` skips argument binding (most of a call's cost) but lives on TF's
        # implementation class; fall back to the public call if a TF release drops it.
        call_flat = getattr(getattr(concrete, "inference_fn", None), "call_flat", None)
        return call_flat if call_flat is not None else concrete  # type: ignore[no-any-return]
