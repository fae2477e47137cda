"""`Scheduler`: time-based rule for a learning rate or weight-decay rate."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, ClassVar

from flwr_declearn.optimizer._checks import init_config, required_state
from flwr_declearn.utils import create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = ["Scheduler"]


@create_types_registry(name="Scheduler")
class Scheduler(RegisteredPlugin, metaclass=ABCMeta, register=False):
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

    plugin_group: ClassVar[str] = "Scheduler"

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
        return init_config(self)

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
        steps, rounds = required_state(state, ("steps", "rounds"), type(self).__name__)
        self.steps = int(steps)
        self.rounds = int(rounds)


class ConstantScheduler(Scheduler, register=False):
    """Constant rate (what a plain number means for an Optimizer's rates)."""

    def compute_value(self, step: int, round_: int) -> float:
        return self.base
