"""Fused torch versions of the kernels of `_kernels.py` (fewer passes, fewer temporaries).

Operands that are not TorchVectors with identical names, shapes, dtypes and
devices go through the generic kernels, which convert or raise a clear error.
"""

from __future__ import annotations

import math

import torch

from flwr_declearn.model.torch import TorchVector
from flwr_declearn.optimizer._kernels import GenericKernels

__all__ = ["Kernels"]


def _aligned(vec: TorchVector, other: object) -> bool:
    if type(other) is not type(vec):
        return False
    ocoefs = other.coefs  # type: ignore[attr-defined]
    if vec.coefs.keys() != ocoefs.keys():
        return False
    for key, val in vec.coefs.items():
        oth = ocoefs[key]
        if val.shape != oth.shape or val.dtype != oth.dtype or val.device != oth.device:
            return False
    return True


class Kernels(GenericKernels):
    """Torch kernels: each element-wise formula costs one or two fused passes."""

    vector_type = TorchVector

    @staticmethod
    def zeros_like(vec: TorchVector) -> TorchVector:  # type: ignore[override]
        return TorchVector({k: torch.zeros_like(v) for k, v in vec.coefs.items()})

    @staticmethod
    def ewma(state: TorchVector, x: TorchVector, beta: float) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.ewma(state, x, beta)  # type: ignore[return-value]
        weight = 1.0 - beta
        xc = x.coefs
        return TorchVector({k: torch.lerp(v, xc[k], weight) for k, v in state.coefs.items()})

    @staticmethod
    def axpy(alpha: float, x: TorchVector, y: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(x, y):
            return GenericKernels.axpy(alpha, x, y)  # type: ignore[return-value]
        yc = y.coefs
        return TorchVector({k: torch.add(yc[k], v, alpha=alpha) for k, v in x.coefs.items()})

    @staticmethod
    def yogi_ewma(state: TorchVector, x: TorchVector, beta: float) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.yogi_ewma(state, x, beta)  # type: ignore[return-value]
        xc = x.coefs
        coefs = {}
        for key, val in state.coefs.items():
            sign = torch.sub(val, xc[key]).sign_()
            coefs[key] = torch.addcmul(val, sign, xc[key], value=beta - 1.0)
        return TorchVector(coefs)

    @staticmethod
    def adaptive_scale(  # type: ignore[override]
        num: TorchVector, sq: TorchVector, eps: float, num_div: float, sq_div: float
    ) -> TorchVector:
        if not _aligned(num, sq):
            return GenericKernels.adaptive_scale(num, sq, eps, num_div, sq_div)  # type: ignore[return-value]
        sq_root = math.sqrt(sq_div)
        sqc = sq.coefs
        coefs = {}
        for key, val in num.coefs.items():
            den = torch.sqrt(sqc[key])
            if sq_div != 1.0:
                den.div_(sq_root)
            den.add_(eps)
            if num_div != 1.0:
                den.mul_(num_div)
            coefs[key] = torch.div(val, den)
        return TorchVector(coefs)

    @staticmethod
    def add_squared(state: TorchVector, x: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(state, x):
            return GenericKernels.add_squared(state, x)  # type: ignore[return-value]
        xc = x.coefs
        return TorchVector({k: torch.addcmul(v, xc[k], xc[k]) for k, v in state.coefs.items()})

    @staticmethod
    def accumulate(acc: TorchVector, x: TorchVector) -> TorchVector:  # type: ignore[override]
        if not _aligned(acc, x):
            return GenericKernels.accumulate(acc, x)  # type: ignore[return-value]
        xc = x.coefs
        for key, val in acc.coefs.items():
            val.add_(xc[key])
        return acc

    @staticmethod
    def clip_by_norm(vec: TorchVector, max_norm: float) -> TorchVector:  # type: ignore[override]
        coefs = {}
        for key, val in vec.coefs.items():
            norm = torch.linalg.vector_norm(val)
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
        norms = [torch.linalg.vector_norm(v) for v in vec.coefs.values()]
        devices = {n.device for n in norms}
        if len(devices) > 1 or next(iter(devices)).type == "cpu":
            total = math.sqrt(sum(float(n) ** 2 for n in norms))
            if total <= max_norm:
                return vec
            scale = max_norm / total
            return TorchVector({k: v * scale for k, v in vec.coefs.items()})
        norm = torch.linalg.vector_norm(torch.stack(norms))
        factor = max_norm / torch.clamp(norm, min=max_norm)
        return TorchVector({k: v * factor for k, v in vec.coefs.items()})
