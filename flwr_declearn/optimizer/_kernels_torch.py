"""Fused torch versions of the kernels of `_kernels.py` (fewer passes, temporaries and dispatches).

Each kernel processes all the tensors of a Vector with `torch._foreach_*`
operations (as `torch.optim` does), in one or two passes over memory.
Operands that are not TorchVectors with identical names, shapes, dtypes and
devices go through the generic kernels, which convert or raise a clear error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from flwr_declearn.model.torch import TorchVector
from flwr_declearn.optimizer._kernels import GenericKernels

__all__ = ["Kernels"]

Tensors = list[torch.Tensor]


def _aligned(vec: TorchVector, *others: object) -> bool:
    """Whether `others` are TorchVectors with `vec`'s names, shapes, dtypes and devices."""
    coefs = vec.coefs
    for other in others:
        if type(other) is not TorchVector:
            return False
        ocoefs = other.coefs
        if coefs.keys() != ocoefs.keys():
            return False
        for key, val in coefs.items():
            oth = ocoefs[key]
            if val.shape != oth.shape or val.dtype != oth.dtype or val.device != oth.device:
                return False
    return True


def _wrap(vec: TorchVector, tensors: Sequence[torch.Tensor]) -> TorchVector:
    return TorchVector(dict(zip(vec.coefs, tensors, strict=True)))


def _values(vec: TorchVector) -> Tensors:
    return list(vec.coefs.values())


class Kernels(GenericKernels):
    """Torch kernels: each formula costs one or two fused passes over all tensors."""

    vector_type = TorchVector

    @staticmethod
    def zeros_like(vec: TorchVector) -> TorchVector:  # type: ignore[override]
        return TorchVector({k: torch.zeros_like(v) for k, v in vec.coefs.items()})

    @staticmethod
    def scale(vec: TorchVector, factor: float) -> TorchVector:  # type: ignore[override]
        return _wrap(vec, torch._foreach_mul(_values(vec), factor))

    @staticmethod
    def square(vec: TorchVector) -> TorchVector:  # type: ignore[override]
        values = _values(vec)
        return _wrap(vec, torch._foreach_mul(values, values))

    @staticmethod
    def ewma(state: TorchVector, x: TorchVector, beta: float) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.ewma(state, x, beta)  # type: ignore[return-value]
        return _wrap(state, torch._foreach_lerp(_values(state), _values(x), 1.0 - beta))

    @staticmethod
    def ewma_squared(state: TorchVector, x: TorchVector, beta: float) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.ewma_squared(state, x, beta)  # type: ignore[return-value]
        xvals = _values(x)
        out = torch._foreach_mul(_values(state), beta)
        torch._foreach_addcmul_(out, xvals, xvals, value=1.0 - beta)
        return _wrap(state, out)

    @staticmethod
    def axpy(alpha: float, x: TorchVector, y: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(x, y):
            return GenericKernels.axpy(alpha, x, y)  # type: ignore[return-value]
        return _wrap(x, torch._foreach_add(_values(y), _values(x), alpha=alpha))

    @staticmethod
    def yogi_ewma(state: TorchVector, x: TorchVector, beta: float) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.yogi_ewma(state, x, beta)  # type: ignore[return-value]
        svals, xvals = _values(state), _values(x)
        sign = torch._foreach_sub(svals, xvals)
        torch._foreach_sign_(sign)
        return _wrap(state, torch._foreach_addcmul(svals, sign, xvals, value=beta - 1.0))

    @staticmethod
    def adaptive_scale(  # type: ignore[override]
        num: TorchVector, sq: TorchVector, eps: float, num_div: float, sq_div: float
    ) -> TorchVector:
        if not _aligned(num, sq):
            return GenericKernels.adaptive_scale(num, sq, eps, num_div, sq_div)  # type: ignore[return-value]
        den = torch._foreach_sqrt(_values(sq))
        if sq_div != 1.0:
            torch._foreach_div_(den, math.sqrt(sq_div))
        torch._foreach_add_(den, eps)
        if num_div != 1.0:
            torch._foreach_mul_(den, num_div)
        return _wrap(num, torch._foreach_div(_values(num), den))

    @staticmethod
    def add_squared(state: TorchVector, x: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.add_squared(state, x)  # type: ignore[return-value]
        xvals = _values(x)
        return _wrap(state, torch._foreach_addcmul(_values(state), xvals, xvals))

    @staticmethod
    def accumulate(acc: TorchVector, x: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(acc, x):
            return GenericKernels.accumulate(acc, x)  # type: ignore[return-value]
        torch._foreach_add_(_values(acc), _values(x))
        return acc

    @staticmethod
    def clip_by_norm(vec: TorchVector, max_norm: float) -> TorchVector:  # type: ignore[override]
        values = _values(vec)
        norms = torch._foreach_norm(values)
        coefs = {}
        for key, val, norm in zip(vec.coefs, values, norms, strict=True):
            if val.device.type == "cpu":  # no device sync to fear: skip the no-op product
                nval = float(norm)
                coefs[key] = val * (max_norm / nval) if nval > max_norm else val
            else:
                coefs[key] = val * (max_norm / torch.clamp(norm, min=max_norm))
        return TorchVector(coefs)

    @staticmethod
    def clip_by_global_norm(vec: TorchVector, max_norm: float) -> TorchVector:  # type: ignore[override]
        if not vec.coefs:
            return vec
        values = _values(vec)
        norms = torch._foreach_norm(values)
        devices = {n.device for n in norms}
        if len(devices) > 1 or next(iter(devices)).type == "cpu":
            total = math.sqrt(sum(float(n) ** 2 for n in norms))
            if total <= max_norm:
                return vec
            return _wrap(vec, torch._foreach_mul(values, max_norm / total))
        total_t = torch.linalg.vector_norm(torch.stack([n.to(norms[0].dtype) for n in norms]))
        factor = max_norm / torch.clamp(total_t, min=max_norm)
        return _wrap(vec, [v * factor for v in values])
