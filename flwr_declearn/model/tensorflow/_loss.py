"""Keras losses as sample-wise `keras.losses.Loss` objects (`build_keras_loss`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

__all__ = ["FunctionLoss", "LossSpec", "align_ranks", "build_keras_loss", "samplewise"]

LossSpec = Any
"""A Keras Loss instance, a Keras loss name, or a function `loss(y_true, y_pred)`."""


def build_keras_loss(
    loss: LossSpec, reduction: str | None = "none", dtype: str | None = None
) -> keras.losses.Loss:
    """Return `loss` as a Keras Loss object with the given reduction.

    As `keras.Model.compile(loss=...)` does, a loss name or function is wrapped
    into a `keras.losses.LossFunctionWrapper`, which aligns the ranks of
    `y_true` and `y_pred` (labels shaped `(n,)` against `(n, 1)` outputs)
    before calling the function. A Loss instance is copied (the user's object
    is left untouched) and given `reduction`.

    Parameters
    ----------
    loss:
        Keras Loss instance, name of a Keras loss or Loss class (as accepted by
        `keras.losses.get`), or function `loss(y_true, y_pred)`.
    reduction:
        Keras reduction of the returned Loss ("none": sample-wise values).
    dtype:
        Compute dtype of the returned Loss (that of `loss`, or Keras' floatx, if None).

    Raises
    ------
    TypeError
        If `loss` is none of these.
    ValueError
        If `loss` is a string that names no Keras loss.
    """
    name: str | None = None
    if isinstance(loss, str):
        name = loss
        try:
            loss = keras.losses.get(loss)
        except ValueError as exc:
            raise ValueError(f"'{name}' is not the name of a Keras loss.") from exc
        if not isinstance(loss, keras.losses.Loss):  # a function: use its Loss class if any
            cls = getattr(keras.losses, "".join(w.capitalize() for w in name.split("_")), None)
            if isinstance(cls, type) and issubclass(cls, keras.losses.Loss):
                loss = cls()
    if isinstance(loss, keras.losses.Loss):
        out = copy.copy(loss)  # (may go through the Loss' config, which can drop its dtype)
        out.reduction = reduction
        _set_dtype(out, dtype or loss.dtype)
        return out
    if callable(loss):
        name = name or getattr(loss, "__name__", None)
        return FunctionLoss(loss, reduction=reduction, name=name, dtype=dtype)
    raise TypeError(f"'loss' must be a Keras Loss, a loss name or a function, not {loss!r}.")


class FunctionLoss(keras.losses.Loss):
    """Keras Loss calling `loss_fn(y_true, y_pred)` after aligning their ranks.

    As Keras does for a loss function given to `compile`: if the ranks differ
    by one and the larger one ends with a unit axis, labels of rank 1 get that
    axis, otherwise it is squeezed.
    """

    def __init__(
        self,
        loss_fn: Callable[[Any, Any], Any],
        reduction: str | None = "none",
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.loss_fn = loss_fn

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = align_ranks(y_true, y_pred)
        return self.loss_fn(y_true, y_pred)


def align_ranks(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Add or squeeze a trailing unit axis so that labels and predictions have one rank."""
    r_true, r_pred = len(y_true.shape), len(y_pred.shape)
    if r_pred == r_true + 1 and y_pred.shape[-1] == 1:
        if r_true == 1:
            return tf.expand_dims(y_true, -1), y_pred
        return y_true, tf.squeeze(y_pred, -1)
    if r_true == r_pred + 1 and y_true.shape[-1] == 1:
        if r_pred == 1:
            return y_true, tf.expand_dims(y_pred, -1)
        return tf.squeeze(y_true, -1), y_pred
    return y_true, y_pred


def _set_dtype(loss: keras.losses.Loss, dtype: str) -> None:
    """Set the compute dtype of a (copied) Keras Loss."""
    policy = keras.dtype_policies.get(dtype)
    loss._dtype_policy = policy
    loss._dtype = policy.compute_dtype


def samplewise(s_loss: tf.Tensor) -> tf.Tensor:
    """Average a loss tensor over all but its first (batch) axis.

    Raises
    ------
    ValueError
        If the loss is a scalar (a batch-level loss, such as Keras' `dice` or
        `tversky` with `axis=None`).
    """
    if s_loss.shape.rank == 0:
        raise ValueError(
            "The loss function returned a scalar: it must return sample-wise values "
            "(for Keras' 'dice' and 'tversky', pass e.g. keras.losses.Dice(axis=-1))."
        )
    if s_loss.shape.rank == 1:
        return s_loss
    return tf.reduce_mean(tf.reshape(s_loss, [tf.shape(s_loss)[0], -1]), axis=1)
