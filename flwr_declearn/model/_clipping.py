"""Per-sample gradient clipping (DP-SGD style), written once for every framework.

Each Model computes sample-wise gradients its own way (torch.func.vmap,
TensorFlow's vectorized jacobian, jax.vmap); this module combines them:

    scale_i = min(1, max_norm / ||g_i||) * w_i / n;   g = sum_i scale_i g_i
    loss = mean_i(w_i * loss_i)

over arrays of any framework, through the few operations of `ClipOps`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["ClipOps", "clip_and_average"]

A = TypeVar("A")


@dataclasses.dataclass(frozen=True)
class ClipOps:
    """The framework operations `clip_and_average` needs (arithmetic is the arrays' own)."""

    row_sq_norms: Callable[[Any], Any]
    """Squared L2 norm of each row (sample) of a `(n, ...)` array."""
    at_most_one: Callable[[Any], Any]
    """Element-wise `min(values, 1)`."""
    sqrt: Callable[[Any], Any]
    mean: Callable[[Any], Any]
    like: Callable[[Any, Any], Any]
    """`like(values, other)`: `values` cast to `other`'s dtype."""
    n_rows: Callable[[Any], Any]
    """Number of rows of an array, as a python number or a scalar of its dtype."""
    combine: Callable[[Any, Any], Any]
    """`combine(scale, grads)`: `sum_i scale[i] * grads[i]` (a tensordot over the first axis)."""


def clip_and_average(
    grads: Mapping[str, A], s_loss: Any, s_wght: Any, max_norm: Any, ops: ClipOps
) -> tuple[dict[str, A], Any]:
    """Average sample-wise gradients, each clipped to an L2 norm of `max_norm`.

    Parameters
    ----------
    grads:
        Sample-wise gradients by weight name, each shaped `(n, *weight_shape)`.
    s_loss:
        Sample-wise losses, shaped `(n,)`.
    s_wght:
        Sample weights shaped `(n,)`, or None.
    max_norm:
        Clipping threshold (a number, or a scalar array).
    ops:
        The framework's operations.

    Returns
    -------
    The batch gradients by name, and the (weighted) batch loss.
    """
    sq_norms = sum(ops.row_sq_norms(g) for g in grads.values())
    scale = ops.at_most_one(max_norm / ops.sqrt(sq_norms))
    if s_wght is not None:
        s_wght = ops.like(s_wght, scale)
        scale = scale * s_wght
        s_loss = s_loss * ops.like(s_wght, s_loss)
    scale = scale / ops.n_rows(scale)
    return {name: ops.combine(scale, g) for name, g in grads.items()}, ops.mean(s_loss)
