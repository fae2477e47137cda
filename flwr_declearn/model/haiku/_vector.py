"""Vector of jax arrays."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from flwr_declearn.model.api._vector import Vector, register_vector_type
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import get_device_policy

__all__ = ["JaxNumpyVector", "select_device"]


def select_device(gpu: bool, idx: int | None = None) -> jax.Device:
    """Return the jax device matching a device policy (CPU if no GPU is available)."""
    if gpu:
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        if gpus:
            return gpus[idx or 0]
    return jax.devices("cpu")[0]


@register_vector_type(jax.Array)
class JaxNumpyVector(Vector[jax.Array]):
    """Vector of named jax arrays.

    64-bit arrays require `jax.config.update("jax_enable_x64", True)`;
    without it, unpacking them raises rather than silently downcasting.
    """

    compatible_vector_types = (NumpyVector,)
    _xp: ClassVar[Any] = jnp

    @staticmethod
    def _to_numpy(value: jax.Array) -> np.ndarray:
        return np.asarray(value)  # zero-copy for CPU arrays

    @classmethod
    def _from_numpy(cls, array: np.ndarray, like: jax.Array | None = None) -> jax.Array:
        if like is not None:
            device = next(iter(like.devices()))
        else:
            policy = get_device_policy()
            device = select_device(policy.gpu, policy.idx)
        out = jax.device_put(array, device)
        if out.dtype != array.dtype:
            raise TypeError(
                f"jax turned a {array.dtype} array into {out.dtype}: "
                "enable 64-bit support with jax.config.update('jax_enable_x64', True)."
            )
        return out

    @staticmethod
    def _shape(value: jax.Array) -> tuple[int, ...]:
        return tuple(value.shape)

    @staticmethod
    def _dtype(value: jax.Array) -> str:
        return str(value.dtype)
