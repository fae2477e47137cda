"""Linear warmup over steps or rounds, optionally followed by another scheduler."""

from __future__ import annotations

from typing import Any, ClassVar

from flwr_declearn.optimizer._checks import required_state
from flwr_declearn.optimizer.schedulers._api import Scheduler

__all__ = ["Warmup", "WarmupRounds"]


class _WarmupBase(Scheduler, register=False):
    """Shared handling of the optional wrapped scheduler."""

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

    def get_config(self) -> dict[str, Any]:
        base: Any = self.base
        if self.wrapped is not None:
            base = [self.wrapped.name, self.wrapped.get_config()]
        return {"base": base, "warmup": self.warmup}


class Warmup(_WarmupBase):
    """Linear warmup over `warmup` steps, then a constant or a wrapped scheduler.

        value(t) = base * (t + 1) / warmup        if t < warmup
                   base, or wrapped(t - warmup, r - r_w)   otherwise

    where `r_w` counts the rounds that started during the warmup (so the
    wrapped rule sees round 0 when the first post-warmup round starts).

    Parameters
    ----------
    base:
        Target value, or a scheduler (instance or `[name, config]` spec)
        whose own `base` is the target and that takes over after warmup.
    warmup:
        Number of warmup steps.
    """

    name: ClassVar[str] = "warmup"

    def __init__(self, base: float | Scheduler | Any, warmup: int) -> None:
        super().__init__(base, warmup)
        self.full_warmup_rounds = -1

    def compute_value(self, step: int, round_: int) -> float:
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        if self.wrapped is None:
            return self.base
        return self.wrapped.compute_value(step - self.warmup, round_ - self.full_warmup_rounds)

    def on_round_start(self) -> None:
        super().on_round_start()
        if self.steps < self.warmup:
            self.full_warmup_rounds += 1

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "full_warmup_rounds": self.full_warmup_rounds}

    def set_state(self, state: dict[str, Any]) -> None:
        (rounds,) = required_state(state, ("full_warmup_rounds",), type(self).__name__)
        super().set_state(state)
        self.full_warmup_rounds = int(rounds)


class WarmupRounds(_WarmupBase):
    """Linear warmup over `warmup` rounds, then a constant or a wrapped scheduler.

        value(t, r) = base * (r + 1) / warmup          if r < warmup
                      base, or wrapped(t - t_w, r - warmup)   otherwise

    where `t_w` counts the steps taken during warmup rounds.

    Parameters
    ----------
    base:
        Target value, or a scheduler (instance or `[name, config]` spec)
        whose own `base` is the target and that takes over after warmup.
    warmup:
        Number of warmup rounds.
    """

    name: ClassVar[str] = "warmup-rounds"

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
        if self.wrapped is None:
            return self.base
        return self.wrapped.compute_value(step - self.warmup_steps, round_ - self.warmup)

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "warmup_steps": self.warmup_steps}

    def set_state(self, state: dict[str, Any]) -> None:
        (steps,) = required_state(state, ("warmup_steps",), type(self).__name__)
        super().set_state(state)
        self.warmup_steps = int(steps)
