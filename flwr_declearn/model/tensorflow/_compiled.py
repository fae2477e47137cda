"""Compiled graph functions of TensorflowModel: gradients, fused training steps, plumbing."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

from flwr_declearn.model._clipping import ClipOps, clip_and_average
from flwr_declearn.model.tensorflow._loss import samplewise
from flwr_declearn.model.tensorflow._vector import TensorflowVector

__all__ = [
    "TENSORFLOW_CLIP_OPS",
    "FusedGraphStep",
    "Trainable",
    "batch_body",
    "batch_specs",
    "flatten",
    "gradients_graph",
    "pack",
    "predict_graph",
]


def gradients_graph(
    model: Any, loss: Any, named: list[tuple[str, Any]], key: tuple, flat: list[Any]
) -> Any:
    """Trace the gradients function of one batch structure, with a free batch size.

    Calling the concrete function skips `tf.function`'s per-call signature
    matching, a large share of a small model's step.
    """
    body = batch_body(model, loss, named, key)
    return tf.function(body).get_concrete_function(*batch_specs(key, flat))


def predict_graph(model: Any, multi: bool, flat: list[Any]) -> Any:
    """Trace inference (`training=False`) on one input structure, with a free batch size."""

    def predict(*args: tf.Tensor) -> tf.Tensor:
        return model(list(args) if multi else args[0], training=False)

    specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in flat]
    return tf.function(predict).get_concrete_function(*specs)


def batch_body(
    model: Any, loss: Any, named: list[tuple[str, Any]], key: tuple
) -> Callable[..., tuple[list[tf.Tensor], tf.Tensor]]:
    """Return `f(*flat_batch) -> (grads, loss)` for the batch structure `key` (to be traced).

    `key` is `TensorflowModel._flat_batch`'s: (kind, names, multi-input, number
    of inputs, has labels, has sample weights, dtypes and shapes).
    """
    kind, _, multi, n_inputs, has_y, has_w, _ = key
    variables = [var for _, var in named]

    def forward_losses(inputs: Any, y_true: Any) -> tf.Tensor:
        return samplewise(loss(y_true, model(inputs, training=True)))

    def grads(inputs: Any, y_true: Any, s_wght: Any) -> tuple[list[tf.Tensor], tf.Tensor]:
        with tf.GradientTape() as tape:
            s_loss = forward_losses(inputs, y_true)
            if s_wght is not None:
                s_loss = s_loss * tf.cast(s_wght, s_loss.dtype)
            mean = tf.reduce_mean(s_loss)
        out = tape.gradient(mean, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [tf.convert_to_tensor(g) for g in out], mean

    def clipped_grads(
        inputs: Any, y_true: Any, s_wght: Any, max_norm: tf.Tensor
    ) -> tuple[list[tf.Tensor], tf.Tensor]:
        # Sample-wise gradients: rows of the jacobian of the sample-wise losses (vectorized).
        with tf.GradientTape() as tape:
            s_loss = forward_losses(inputs, y_true)
        jacobians = tape.jacobian(
            s_loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        named_jac = {str(i): jac for i, jac in enumerate(jacobians)}
        out, mean = clip_and_average(named_jac, s_loss, s_wght, max_norm, TENSORFLOW_CLIP_OPS)
        return list(out.values()), mean

    body: Callable[..., tuple[list[tf.Tensor], tf.Tensor]] = (
        grads if kind == "grads" else clipped_grads
    )

    def grads_and_loss(*args: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor]:
        inputs: Any = list(args[:n_inputs]) if multi else args[0]
        rest = list(args[n_inputs:])
        y_true = rest.pop(0) if has_y else None
        s_wght = rest.pop(0) if has_w else None
        return body(inputs, y_true, s_wght, *rest)

    return grads_and_loss


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
        keras_model: Any,
        loss: Any,
        state: Trainable,
        key: tuple,
        flat: list[Any],
        rule: Callable[..., Any],
        args: Any,
    ) -> None:
        grads_and_loss = batch_body(keras_model, loss, state.named, key)
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


TENSORFLOW_CLIP_OPS = ClipOps(
    row_sq_norms=lambda grads: tf.reduce_sum(
        tf.square(tf.reshape(grads, [tf.shape(grads)[0], -1])), axis=1
    ),
    at_most_one=lambda values: tf.minimum(values, tf.cast(1.0, values.dtype)),
    sqrt=tf.sqrt,
    mean=tf.reduce_mean,
    like=lambda values, other: tf.cast(values, other.dtype),
    n_rows=lambda values: tf.cast(tf.shape(values)[0], values.dtype),
    combine=lambda scale, grads: tf.tensordot(scale, grads, axes=1),
)
"""TensorFlow operations of `clip_and_average` (in graphs)."""


class Trainable:
    """Trainable weights: names, Keras variables, backing tf.Variables, reference Vector."""

    def __init__(self, named: list[tuple[str, Any]]) -> None:
        self.named = named
        self.names = tuple(name for name, _ in named)
        # Updates go straight to the backing tf.Variable: Keras' wrapper costs more
        # than the op itself on small models. None where there is no such variable.
        self.raw = [_backing_variable(var) for _, var in named]
        self.reference = TensorflowVector({name: var.value for name, var in named})
        """The variables' values, to check updates against (`Vector.check_specs`)."""


def _backing_variable(var: Any) -> tf.Variable | None:
    value = getattr(var, "value", None)
    if isinstance(value, tf.Variable) and tuple(value.shape) == tuple(var.shape):
        return value
    return None
