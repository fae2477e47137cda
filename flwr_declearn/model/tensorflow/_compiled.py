"""Compiled graph functions of TensorflowModel: fused training steps and their plumbing."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import tensorflow as tf

if TYPE_CHECKING:
    from flwr_declearn.model.tensorflow._model import TensorflowModel

__all__ = ["FusedGraphStep", "Trainable", "batch_specs", "flatten", "pack", "shape_of"]


def batch_specs(key: tuple, flat: list[Any]) -> list[tf.TensorSpec]:
    """Specs of a flat batch (free batch size; `max_norm` last for clipped gradients)."""
    specs = [tf.TensorSpec([None, *t.shape[1:]] if t.shape.rank else [], t.dtype) for t in flat]
    if key[0] == "clipped":
        specs[-1] = tf.TensorSpec([], flat[-1].dtype)  # max_norm
    return specs


class FusedGraphStep:
    """Graph function of one fused training step: gradients, `rule`, weights assignment.

    Called with the flat batch and the flat rule arguments; returns the rule's
    outputs (packed as traced) and the batch loss.
    """

    def __init__(
        self,
        model: TensorflowModel,
        state: Trainable,
        key: tuple,
        flat: list[Any],
        rule: Callable[..., Any],
        args: Any,
    ) -> None:
        grads_and_loss = model._batch_body(state.named, key)
        names, n_batch = state.names, len(flat)
        targets = [
            raw if raw is not None else var
            for (_, var), raw in zip(state.named, state.raw, strict=True)
        ]
        structure: list[Any] = []
        # The rule is element-wise arithmetic over every weight: XLA fuses it into
        # a few loops (as for the optimizer kernels), instead of one executor node
        # per operation and array.
        compiled_rule = tf.function(rule, jit_compile=True)

        def step(*tensors: tf.Tensor) -> list[tf.Tensor]:
            grads, loss = grads_and_loss(*tensors[:n_batch])
            weights = {
                name: tf.convert_to_tensor(var) for name, var in zip(names, targets, strict=True)
            }
            rule_args = pack(args, iter(tensors[n_batch:]))
            new_weights, outputs = compiled_rule(
                weights, dict(zip(names, grads, strict=True)), rule_args
            )
            for name, var in zip(names, targets, strict=True):
                var.assign(new_weights[name])
            structure.append(pack(outputs, itertools.repeat(None)))  # no graph tensors kept
            return [*flatten(outputs, []), loss]

        arg_specs = [tf.TensorSpec(t.shape, t.dtype) for t in flatten(args, [])]
        concrete = tf.function(step).get_concrete_function(*batch_specs(key, flat), *arg_specs)
        self.structure = structure[-1]
        # As in the optimizer kernels: call the graph function on flat tensors, with
        # the captured variables appended; fall back to the public call if TF changes.
        call_flat = getattr(getattr(concrete, "inference_fn", None), "call_flat", None)
        self.captured = list(concrete.captured_inputs) if call_flat is not None else []
        self.call = call_flat if call_flat is not None else concrete

    def __call__(self, flat: list[tf.Tensor], arg_flat: list[tf.Tensor]) -> tuple[Any, tf.Tensor]:
        out = self.call(*flat, *arg_flat, *self.captured)
        return pack(self.structure, iter(out[:-1])), out[-1]


def flatten(nest: Any, out: list[Any]) -> list[Any]:
    """Append the leaves of a nest of dicts (sorted keys), lists and tuples to `out`."""
    if isinstance(nest, dict):
        for key in sorted(nest):
            flatten(nest[key], out)
    elif isinstance(nest, list | tuple):
        for item in nest:
            flatten(item, out)
    else:
        out.append(nest)
    return out


def pack(structure: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild a nest shaped like `structure` from leaves in `flatten` order."""
    if isinstance(structure, dict):
        packed = {key: pack(structure[key], leaves) for key in sorted(structure)}
        return {key: packed[key] for key in structure}
    if isinstance(structure, list | tuple):
        items = [pack(item, leaves) for item in structure]
        if isinstance(structure, list):
            return items
        if hasattr(structure, "_fields"):  # a namedtuple
            return type(structure)(*items)
        return tuple(items)
    return next(leaves)


class Trainable:
    """Trainable weights: names, Keras variables, backing tf.Variables, shapes."""

    def __init__(self, named: list[tuple[str, Any]]) -> None:
        self.named = named
        self.names = tuple(name for name, _ in named)
        # Updates go straight to the backing tf.Variable: Keras' wrapper costs more
        # than the op itself on small models. None where there is no such variable.
        self.raw = [_backing_variable(var) for _, var in named]
        self.shapes = [tuple(var.shape) for _, var in named]


def _backing_variable(var: Any) -> tf.Variable | None:
    value = getattr(var, "value", None)
    if isinstance(value, tf.Variable) and tuple(value.shape) == tuple(var.shape):
        return value
    return None


def shape_of(tensor: Any) -> tuple[int, ...]:
    """Shape of an eager tensor, as a tuple (fast path for EagerTensors)."""
    fast = getattr(tensor, "_shape_tuple", None)
    if fast is not None:
        shape = fast()
        if shape is not None:
            return tuple(shape)
    return tuple(tensor.shape)
