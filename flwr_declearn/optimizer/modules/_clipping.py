"""Fixed-threshold L2-norm clipping of (batch-averaged) gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import check_positive
from flwr_declearn.optimizer._fused import FusedStep
from flwr_declearn.optimizer._kernels import clip_by_global_norm, clip_by_norm
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["L2Clipping", "L2GlobalClipping"]


class L2Clipping(OptiModule):
    """Clip each gradient array to an L2 norm of at most `max_norm`.

    For each named array `g_k`:

        out_k = g_k * min(1, max_norm / ||g_k||_2)

    as `tf.clip_by_norm` does per tensor. See `L2GlobalClipping` to clip the
    concatenation of all arrays instead.

    Parameters
    ----------
    max_norm:
        Clipping threshold (> 0).
    """

    name: ClassVar[str] = "l2-clipping"

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = check_positive(max_norm, "max_norm")

    def run(self, gradients: Vector) -> Vector:
        return clip_by_norm(gradients, self.max_norm)

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep:
        return FusedStep("clip_by_norm", scalars=(self.max_norm,))

    def get_config(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}


class L2GlobalClipping(OptiModule):
    """Clip gradients to a joint L2 norm of at most `max_norm`.

    With `||g||_2` the norm of all arrays concatenated:

        out = g * min(1, max_norm / ||g||_2)

    as `torch.nn.utils.clip_grad_norm_` and `tf.clip_by_global_norm` do.

    Parameters
    ----------
    max_norm:
        Clipping threshold (> 0).
    """

    name: ClassVar[str] = "l2-global-clipping"

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = check_positive(max_norm, "max_norm")

    def run(self, gradients: Vector) -> Vector:
        return clip_by_global_norm(gradients, self.max_norm)

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep:
        return FusedStep("clip_by_global_norm", scalars=(self.max_norm,))

    def get_config(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm}
