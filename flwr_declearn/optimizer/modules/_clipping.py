"""Fixed-threshold L2-norm clipping of (batch-averaged) gradients."""

from __future__ import annotations

from typing import Any, ClassVar

from flwr_declearn.optimizer._arrays import Arrays, Hyper
from flwr_declearn.optimizer._checks import check_positive
from flwr_declearn.optimizer.modules._api import OptiModule

__all__ = ["L2Clipping", "L2GlobalClipping"]


def clip_each(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    return (), g.clip_each(h["max_norm"])  # g_k / max(1, ||g_k|| / max_norm), for each k


def clip_global(states: tuple[Arrays, ...], g: Arrays, h: Hyper) -> Any:
    return (), g.clip_all(h["max_norm"])  # g / max(1, ||g|| / max_norm)


class _Clipping(OptiModule, register=False):
    """Stateless clipping to `max_norm` (> 0)."""

    hyper_names = ("max_norm",)

    def __init__(self, max_norm: float = 1.0) -> None:
        self.max_norm = check_positive(max_norm, "max_norm")


class L2Clipping(_Clipping):
    """Clip each gradient array to an L2 norm of at most `max_norm` (> 0).

    For each named array: `out_k = g_k * min(1, max_norm / ||g_k||_2)`, as
    `tf.clip_by_norm` does per tensor. See `L2GlobalClipping` to clip the
    concatenation of all arrays instead.
    """

    name: ClassVar[str] = "l2-clipping"
    step = staticmethod(clip_each)


class L2GlobalClipping(_Clipping):
    """Clip gradients to a joint L2 norm of at most `max_norm` (> 0).

    With `||g||_2` the norm of all arrays concatenated:
    `out = g * min(1, max_norm / ||g||_2)`, as `torch.nn.utils.clip_grad_norm_`
    and `tf.clip_by_global_norm` do.
    """

    name: ClassVar[str] = "l2-global-clipping"
    step = staticmethod(clip_global)
