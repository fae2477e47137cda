"""Linear warmup over steps or rounds, optionally followed by another scheduler."""

from __future__ import annotations

from typing import Any, ClassVar

from flwr_declearn.optimizer._checks import required_state
from flwr_declearn.optimizer.schedulers._api import Scheduler

__all__ = ["Warmup", "WarmupRounds"]


class _WarmupBase(Scheduler, register=False):
    """Linear warmup to `base` over `warmup` steps or rounds, then `base` or a wrapped rule.

    Parameters
    ----------
    base:
        Target value, or a scheduler (instance or `[name, config]` spec)
        whose own `base` is the target and that takes over after warmup.
    warmup:
        Number of warmup steps (`Warmup`) or rounds (`WarmupRounds`).
    """

    counter: ClassVar[str]
    """Name of the counter of the warmup's rounds (or steps) that the wrapped rule skips."""

    def __init__(self, base: float | Scheduler | Any, warmup: int) -> None:
        if isinstance(base, list | tuple):
            base = Scheduler.from_specs(*base)
        if isinstance(base, Scheduler):
            self.wrapped: Scheduler | None = base
            value = base.base
        elif isinstance(base, int | float) and not isinstance(base, bool):
            self.wrapped = None
            value = float(base)
        else:
            raise TypeError(
                f"'base' must be a number, a Scheduler or a [name, config] spec, not {base!r}."
            )
        super().__init__(value)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"'warmup' must be an int >= 0, not {warmup!r}.")
        self.warmup = warmup

    def _after(self, step: int, round_: int) -> float:
        return self.base if self.wrapped is None else self.wrapped.compute_value(step, round_)

    def get_config(self) -> dict[str, Any]:
        base: Any = self.base
        if self.wrapped is not None:
            base = [self.wrapped.name, self.wrapped.get_config()]
        return {"base": base, "warmup": self.warmup}

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), self.counter: getattr(self, self.counter)}

    def set_state(self, state: dict[str, Any]) -> None:
        (count,) = required_state(state, (self.counter,), type(self).__name__)
        super().set_state(state)
        setattr(self, self.counter, int(count))


class Warmup(_WarmupBase):
    """Linear warmup over `warmup` steps:

        value(t) = base * (t + 1) / warmup                      if t < warmup
                   base, or wrapped(t - warmup, r - r_w)        otherwise

    where `r_w` counts the rounds that started during the warmup (so the
    wrapped rule sees round 0 when the first post-warmup round starts).
    """

    name: ClassVar[str] = "warmup"
    counter: ClassVar[str] = "full_warmup_rounds"

    def __init__(self, base: float | Scheduler | Any, warmup: int) -> None:
        super().__init__(base, warmup)
        self.full_warmup_rounds = -1

    def compute_value(self, step: int, round_: int) -> float:
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        return self._after(step - self.warmup, round_ - self.full_warmup_rounds)

    def on_round_start(self) -> None:
        super().on_round_start()
        if self.steps < self.warmup:
            self.full_warmup_rounds += 1


class WarmupRounds(_WarmupBase):
    """Linear warmup over `warmup` rounds:

        value(t, r) = base * (r + 1) / warmup                   if r < warmup
                      base, or wrapped(t - t_w, r - warmup)     otherwise

    where `t_w` counts the steps taken during warmup rounds.
    """

    name: ClassVar[str] = "warmup-rounds"
    counter: ClassVar[str] = "warmup_steps"

    def __init__(self, base: float | Scheduler | Any, warmup: int) -> None:
        super().__init__(base, warmup)
        self.warmup_steps = 0

    def get_next_rate(self) -> float:
        value = super().get_next_rate()
        if self.rounds < self.warmup:
            self.warmup_steps += 1
        return value

    def compute_value(self, step: int, round_: int) -> float:
        if round_ < self.warmup:
            return self.base * (round_ + 1) / self.warmup
        return self._after(step - self.warmup_steps, round_ - self.warmup)
