"""Cosine annealing, with or without warm restarts (SGDR, Loshchilov & Hutter, 2016).

`t` is the step index, or the round index if `step_level` is False.
"""

from __future__ import annotations

import math
from typing import ClassVar

from flwr_declearn.optimizer.schedulers._api import Scheduler
from flwr_declearn.optimizer.schedulers._decay import _positive_int

__all__ = ["CosineAnnealing", "CosineAnnealingWarmRestarts"]


def _cosine(base: float, max_lr: float, index: int, duration: int) -> float:
    """Half-cosine from `max_lr` (index 0) down to `base` (index `duration`)."""
    return base + 0.5 * (max_lr - base) * (1 + math.cos(index / duration * math.pi))


class CosineAnnealing(Scheduler):
    """Cosine annealing from `max_lr` down to `base` over `duration`, then `base`.

    value(t) = base + (max_lr - base) * (1 + cos(pi * t / duration)) / 2   if t < duration
               base                                                        otherwise
    """

    name: ClassVar[str] = "cosine-annealing"

    def __init__(self, base: float, max_lr: float, duration: int, step_level: bool = True) -> None:
        super().__init__(base)
        self.max_lr = max_lr
        self.duration = _positive_int(duration, "duration")
        self.step_level = bool(step_level)

    def compute_value(self, step: int, round_: int) -> float:
        index = step if self.step_level else round_
        if index >= self.duration:
            return self.base
        return _cosine(self.base, self.max_lr, index, self.duration)


class CosineAnnealingWarmRestarts(Scheduler):
    """Cosine annealing restarted every `period`, with peak scaled by `t_mult` per cycle.

    With `cycle, i = divmod(t, period)`:

        value(t) = base + (max_lr * t_mult**cycle - base) * (1 + cos(pi * i / period)) / 2

    With `step_level=False`, both the cycle and the position in it count
    rounds (declearn 2.9.1 takes the cycle from steps even then).
    """

    name: ClassVar[str] = "cosine-annealing-warm-restarts"

    def __init__(
        self,
        base: float,
        max_lr: float,
        period: int,
        t_mult: float = 1.0,
        step_level: bool = True,
    ) -> None:
        super().__init__(base)
        self.max_lr = max_lr
        self.period = _positive_int(period, "period")
        self.t_mult = t_mult
        self.step_level = bool(step_level)

    def compute_value(self, step: int, round_: int) -> float:
        cycle, index = divmod(step if self.step_level else round_, self.period)
        return _cosine(self.base, self.max_lr * self.t_mult**cycle, index, self.period)
