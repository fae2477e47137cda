"""jit-compiled computations shared by the JAX models (HaikuModel, JaxModel).

Each takes the model's forward pass as a static argument: a hashable
`forward(params, key, *inputs) -> y_pred` over a flat dict of named weights.
Models built from equal forwards share their compiled code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from flwr_declearn.model._clipping import ClipOps, clip_and_average

__all__ = [
    "Forward",
    "Params",
    "Pending",
    "StepInputs",
    "add_trees",
    "copy_tree",
    "fused_step",
    "grads_and_loss",
    "native_params",
    "predict",
    "sample_losses",
    "samplewise",
    "static",
]

Params = dict[str, jax.Array]
"""Flat mapping of weight names to arrays."""
Forward = Callable[..., jax.Array]
"""`forward(params, key, *inputs) -> y_pred`, hashable (a jit static argument)."""
LossFn = Callable[[jax.Array, jax.Array], jax.Array]
Pending = tuple[Params, float]
"""Updates not yet added to the weights, and their scale."""
Batch = tuple[tuple[jax.Array, ...], jax.Array | None, jax.Array | None]


class _ById:
    """Hashable stand-in for an unhashable function (compared by identity)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def native_params(params: Params, renames: tuple[tuple[str, str], ...] | None) -> Params:
    """`params` keyed by native names (`renames`: our name -> native name; None: the same)."""
    if renames is None:
        return params
    return {native: params[ours] for ours, native in renames}


def static(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return `func` if hashable (a valid jit static argument), else a `_ById` wrapper."""
    try:
        hash(func)
    except TypeError:
        return _ById(func)
    return func


def samplewise(s_loss: jax.Array) -> jax.Array:
    """Average a loss array over all but its first (batch) axis."""
    if s_loss.ndim == 0:
        raise ValueError("The loss function returned a scalar: it must return sample-wise values.")
    if s_loss.ndim == 1:
        return s_loss
    return s_loss.reshape(s_loss.shape[0], -1).mean(axis=1)


@functools.partial(jax.jit, static_argnums=0)
def predict(
    forward: Forward, train: Params, fixed: Params, rng: jax.Array, inputs: tuple[jax.Array, ...]
) -> tuple[jax.Array, jax.Array]:
    rng, key = jax.random.split(rng)
    return forward(train | fixed, key, *inputs), rng


@functools.partial(jax.jit, static_argnums=0)
def sample_losses(loss_fn: LossFn, y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
    return samplewise(loss_fn(y_pred, y_true))


def _grads(
    forward: Forward,
    loss_fn: LossFn,
    train: Params,
    fixed: Params,
    key: jax.Array,
    batch: Batch,
    max_norm: float | jax.Array | None,
) -> tuple[Params, jax.Array]:
    """Batch gradients and (weighted) loss; traced into the jitted functions below.

    With `max_norm`, the average of sample-wise gradients (from `jax.vmap`,
    each sample with its own key), each clipped to an L2 norm of `max_norm`.
    """
    inputs, y_true, s_wght = batch

    def losses(train: Params, key: jax.Array, inputs: tuple[jax.Array, ...], y_true: Any) -> Any:
        return samplewise(loss_fn(forward(train | fixed, key, *inputs), y_true))

    if max_norm is None:

        def batch_loss(train: Params) -> jax.Array:
            s_loss = losses(train, key, inputs, y_true)
            return jnp.mean(s_loss if s_wght is None else s_loss * s_wght)

        loss, grads = jax.value_and_grad(batch_loss)(train)
        return grads, loss

    def sample_loss(
        train: Params, key: jax.Array, inputs: tuple[jax.Array, ...], y_true: Any
    ) -> Any:
        one = None if y_true is None else y_true[None]
        return jnp.sum(losses(train, key, tuple(x[None] for x in inputs), one))

    keys = jax.random.split(key, inputs[0].shape[0])
    grad_fn = jax.vmap(jax.value_and_grad(sample_loss), in_axes=(None, 0, 0, 0))
    s_loss, grads = grad_fn(train, keys, inputs, y_true)
    return clip_and_average(grads, s_loss, s_wght, max_norm, _JAX_CLIP_OPS)


_JAX_CLIP_OPS = ClipOps(
    row_sq_norms=lambda grads: jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1),
    at_most_one=lambda values: jnp.minimum(values, 1.0),
    sqrt=jnp.sqrt,
    mean=jnp.mean,
    like=lambda values, other: values.astype(other.dtype),
    n_rows=lambda values: int(values.shape[0]),
    combine=lambda scale, grads: jnp.tensordot(scale.astype(grads.dtype), grads, axes=1),
)
"""jax operations of `clip_and_average`."""


class StepInputs(NamedTuple):
    """What the compiled steps read besides the trainable weights."""

    pending: Pending | None
    """Updates not yet added to the weights (added first), and their scale."""
    fixed: Params
    """The non-trainable weights."""
    rng: jax.Array
    """PRNG key, split into the next one and that of this step."""
    batch: Batch
    max_norm: float | jax.Array | None
    """Sample-wise clipping threshold, if any."""


def _grads_with_pending(
    forward: Forward, loss_fn: LossFn, train: Params, step: StepInputs
) -> tuple[Params, jax.Array, jax.Array, Params]:
    """Add pending updates to `train`, then return `(grads, loss, next rng, train)`."""
    if step.pending is not None:
        train = add_trees(train, *step.pending)
    rng, key = jax.random.split(step.rng)
    grads, loss = _grads(forward, loss_fn, train, step.fixed, key, step.batch, step.max_norm)
    return grads, loss, rng, train


@functools.partial(jax.jit, static_argnums=(0, 1))
def grads_and_loss(
    forward: Forward, loss_fn: LossFn, train: Params, step: StepInputs
) -> tuple[Params, jax.Array, jax.Array, Params | None]:
    """Gradients (clipped sample-wise if `max_norm` is set), loss, next PRNG key, new weights.

    Pending updates (if any) are first added to `train`; the updated weights
    are returned then (None otherwise).
    """
    grads, loss, rng, new_train = _grads_with_pending(forward, loss_fn, train, step)
    return grads, loss, rng, None if step.pending is None else new_train


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=3)
def fused_step(
    forward: Forward,
    loss_fn: LossFn,
    rule: Callable[..., Any],
    train: Params,
    step: StepInputs,
    args: Any,
) -> tuple[Params, Any, jax.Array, jax.Array]:
    """Gradients, then `rule(train, grads, args)`: new weights, rule outputs, loss, next key.

    `train`'s buffers are donated to the new weights (updated in place): the
    model never lets them out (`get_weights` copies).
    """
    grads, loss, rng, train = _grads_with_pending(forward, loss_fn, train, step)
    new_train, outputs = rule(train, grads, args)
    return new_train, outputs, loss, rng


@jax.jit
def copy_tree(params: Params) -> Params:
    return {k: jnp.copy(v) for k, v in params.items()}


@jax.jit
def add_trees(params: Params, updates: Params, scale: float) -> Params:  # used in other jits
    """Add `scale * updates` to weights, keeping the weights' dtypes."""
    return {k: (v + updates[k] * scale).astype(v.dtype) for k, v in params.items()}
