"""`Scheduler`: time-based rule for a learning rate or weight-decay rate."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar, Self

from flwr_declearn.optimizer._checks import pop_state
from flwr_declearn.utils import access_registered, create_types_registry, register_type

__all__ = ["Scheduler"]


@create_types_registry(name="Scheduler")
class Scheduler(metaclass=ABCMeta):
    """Rate that evolves with training steps and/or rounds.

    `steps` counts the rates handed out by `get_next_rate` (from 0);
    `rounds` counts `on_round_start` calls, from -1 before the first round
    (so the first round has index 0). `compute_value(step, round_)` is the
    side-effect-free rule. Subclasses are registered under their `name` in
    the "Scheduler" group, unless declared with `register=False`.

    Parameters
    ----------
    base:
        Base value of the rate (meaning varies with the rule).
    """

    name: ClassVar[str] = NotImplemented
    """Unique name of the scheduler type, used for registration and configs."""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            if not isinstance(cls.__dict__.get("name"), str):
                raise TypeError(
                    f"Scheduler subclass '{cls.__qualname__}' must define a str 'name' class "
                    "attribute (or be declared with register=False)."
                )
            register_type(cls, name=cls.name, group="Scheduler")

    def __init__(self, base: float) -> None:
        self.base = base
        self.steps = 0
        self.rounds = -1

    @abstractmethod
    def compute_value(self, step: int, round_: int) -> float:
        """Return the rate at a given step and round index (no side effects)."""

    def current_value(self) -> float:
        """Return the rate `get_next_rate` would return now, without advancing."""
        return self.compute_value(self.steps, self.rounds)

    def get_next_rate(self) -> float:
        """Return the rate for the current step, then count the step."""
        value = self.compute_value(self.steps, self.rounds)
        self.steps += 1
        return value

    def on_round_start(self) -> None:
        """Count a new training round."""
        self.rounds += 1

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable keyword arguments that rebuild this scheduler."""
        return {"base": self.base}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Build a scheduler from its `get_config` output.

        Raises
        ------
        TypeError
            If `config` holds unexpected or lacks required parameters.
        """
        try:
            return cls(**config)
        except TypeError as exc:
            raise TypeError(f"Invalid config for Scheduler '{cls.name}': {exc}") from exc

    @staticmethod
    def from_specs(name: str, config: dict[str, Any]) -> Scheduler:
        """Build the scheduler registered under `name` from its config dict.

        Raises
        ------
        KeyError
            If no Scheduler is registered under `name`.
        """
        cls = access_registered(name, group="Scheduler")
        return cls.from_config(config)  # type: ignore[attr-defined, no-any-return]

    def get_state(self) -> dict[str, Any]:
        """Return the step and round counters (and any rule-specific counter)."""
        return {"steps": self.steps, "rounds": self.rounds}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore counters returned by `get_state`.

        Raises
        ------
        KeyError
            If a counter is missing.
        """
        steps, rounds = pop_state(state, ("steps", "rounds"), type(self).__name__)
        self.steps = int(steps)
        self.rounds = int(rounds)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConstantScheduler(Scheduler, register=False):
    """Constant rate (what a plain number means for an Optimizer's rates)."""

    def compute_value(self, step: int, round_: int) -> float:
        return self.base
