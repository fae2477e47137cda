"""Vector of torch tensors."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from flwr_declearn.model.api._vector import Vector, register_vector_type
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import get_device_policy

__all__ = ["TorchVector", "select_device"]


def select_device(gpu: bool, idx: int | None = None) -> torch.device:
    """Return the torch device matching a device policy (CPU if no GPU is available)."""
    if gpu and torch.cuda.is_available():
        return torch.device("cuda", idx if idx is not None else 0)
    return torch.device("cpu")


@register_vector_type(torch.Tensor)
class TorchVector(Vector[torch.Tensor]):
    """Vector of named torch tensors."""

    compatible_vector_types = (NumpyVector,)
    _xp: ClassVar[Any] = torch

    @staticmethod
    def _to_numpy(value: torch.Tensor) -> np.ndarray:
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        return value.numpy()  # shares memory with CPU tensors

    @classmethod
    def _from_numpy(cls, array: np.ndarray, like: torch.Tensor | None = None) -> torch.Tensor:
        if not (array.flags.writeable and array.flags.c_contiguous):
            array = (
                array.copy()
            )  # torch needs writeable memory; keeps 0-d shapes, unlike ascontiguousarray
        tensor = torch.from_numpy(array)
        if like is not None:
            device = like.device
        else:
            policy = get_device_policy()
            device = select_device(policy.gpu, policy.idx)
        return tensor.to(device) if device.type != "cpu" else tensor

    @staticmethod
    def _shape(value: torch.Tensor) -> tuple[int, ...]:
        return tuple(value.shape)

    @staticmethod
    def _dtype(value: torch.Tensor) -> str:
        return str(value.dtype).removeprefix("torch.")

    @staticmethod
    def _minimum(value: torch.Tensor, other: Any) -> torch.Tensor:
        if isinstance(other, torch.Tensor):
            return torch.minimum(value, other)
        return torch.clamp(value, max=other)

    @staticmethod
    def _maximum(value: torch.Tensor, other: Any) -> torch.Tensor:
        if isinstance(other, torch.Tensor):
            return torch.maximum(value, other)
        return torch.clamp(value, min=other)

    @staticmethod
    def _vdot(value: torch.Tensor, other: torch.Tensor) -> float:
        return float(torch.sum(value * other))

    @staticmethod
    def _equal(value: torch.Tensor, other: torch.Tensor) -> bool:
        return bool(torch.equal(value, other))
