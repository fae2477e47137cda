"""Cyclical learning rates (Smith, 2017): triangular, triangular2 and exp_range policies."""

from __future__ import annotations

from typing import ClassVar

from flwr_declearn.optimizer.schedulers._api import Scheduler
from flwr_declearn.optimizer.schedulers._decay import _positive_int

__all__ = ["CyclicExpRange", "CyclicTriangular"]


def _triangle(step: int, stepsize: int) -> float:
    """Position in the current cycle: 0 -> 1 over `stepsize` steps, then back to 0."""
    return 1 - abs((step % (2 * stepsize)) / stepsize - 1)


class CyclicTriangular(Scheduler):
    """Rate going linearly `base -> max_lr -> base` every `2 * stepsize` steps.

        value(t) = base + (max_lr - base) * triangle(t) / (2 ** cycle if decay else 1)

    with `cycle = t // (2 * stepsize)` ('triangular' policy, or
    'triangular2' if `decay`, as in `torch.optim.lr_scheduler.CyclicLR`).
    """

    name: ClassVar[str] = "cyclic-triangular"

    def __init__(self, base: float, max_lr: float, stepsize: int, decay: bool = False) -> None:
        super().__init__(base)
        self.max_lr = max_lr
        self.stepsize = _positive_int(stepsize, "stepsize")
        self.decay = bool(decay)

    def compute_value(self, step: int, round_: int) -> float:
        scale = _triangle(step, self.stepsize)
        if self.decay:
            scale /= 2 ** (step // (2 * self.stepsize))
        return self.base + scale * (self.max_lr - self.base)


class CyclicExpRange(Scheduler):
    """Triangular cycles whose bounds both decay by `decay ** t` ('exp_range' policy).

    value(t) = decay**t * (base + (max_lr - base) * triangle(t))
    """

    name: ClassVar[str] = "cyclic-exp-range"

    def __init__(self, base: float, max_lr: float, stepsize: int, decay: float) -> None:
        super().__init__(base)
        self.max_lr = max_lr
        self.stepsize = _positive_int(stepsize, "stepsize")
        self.decay = decay

    def compute_value(self, step: int, round_: int) -> float:
        factor = self.decay**step
        low, high = self.base * factor, self.max_lr * factor
        return low + _triangle(step, self.stepsize) * (high - low)  # type: ignore[no-any-return]
