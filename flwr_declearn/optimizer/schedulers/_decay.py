"""Decay rules over steps (or rounds): exponential, inverse-scaling, linear, piecewise, polynomial.

`base` is the initial value; `t` is the step index, or the round index if
`step_level` is False.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flwr_declearn.optimizer.schedulers._api import Scheduler

__all__ = [
    "ExponentialDecay",
    "InverseScaling",
    "LinearDecay",
    "PiecewiseDecay",
    "PolynomialDecay",
]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{name}' must be an int > 0, not {value!r}.")
    return value


class _RateDecay(Scheduler, register=False):
    """A rule of `t` driven by a `rate`."""

    def __init__(self, base: float, rate: float, step_level: bool = True) -> None:
        super().__init__(base)
        self.rate = rate
        self.step_level = bool(step_level)

    def _index(self, step: int, round_: int) -> int:
        return step if self.step_level else round_


class ExponentialDecay(_RateDecay):
    """`base * rate ** t`: `rate` is the factor applied after each step (or round)."""

    name: ClassVar[str] = "exponential-decay"

    def compute_value(self, step: int, round_: int) -> float:
        return self.base * self.rate ** self._index(step, round_)


class InverseScaling(_RateDecay):
    """`base / (t + 1) ** rate`."""

    name: ClassVar[str] = "inverse-scaling"

    def compute_value(self, step: int, round_: int) -> float:
        return self.base / (self._index(step, round_) + 1) ** self.rate  # type: ignore[no-any-return]


class LinearDecay(_RateDecay):
    """`base * max(1 - rate * t, 0)`: `rate` is the share of `base` removed per step (or round)."""

    name: ClassVar[str] = "linear-decay"

    def compute_value(self, step: int, round_: int) -> float:
        return self.base * max(1 - self.rate * self._index(step, round_), 0)


class PiecewiseDecay(_RateDecay):
    """`base * rate ** (t // step_size)`: exponential decay by stairs of `step_size`."""

    name: ClassVar[str] = "piecewise-decay"

    def __init__(self, base: float, rate: float, step_size: int, step_level: bool = True) -> None:
        super().__init__(base, rate, step_level)
        self.step_size = _positive_int(step_size, "step_size")

    def compute_value(self, step: int, round_: int) -> float:
        return self.base * self.rate ** (self._index(step, round_) // self.step_size)


class PolynomialDecay(Scheduler):
    """`base * (1 - min(t / limit, 1)) ** power`: reaches 0 at `t = limit`."""

    name: ClassVar[str] = "polynomial-decay"

    def __init__(self, base: float, power: int, limit: int, step_level: bool = True) -> None:
        super().__init__(base)
        self.power = power
        self.limit = _positive_int(limit, "limit")
        self.step_level = bool(step_level)

    def compute_value(self, step: int, round_: int) -> float:
        ratio = min((step if self.step_level else round_) / self.limit, 1)
        return self.base * (1 - ratio) ** self.power  # type: ignore[no-any-return]
