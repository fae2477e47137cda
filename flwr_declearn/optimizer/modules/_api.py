"""`OptiModule`: plug-in gradients-transformation brick of an `Optimizer`.

A module's maths is one pure step over named arrays (`Arrays`), in the optax
spirit:

    step(states, gradients, hyper) -> (new_states, output)

where `states` are the Vectors named by `state_names` (None: zeros) and
`hyper` the scalars returned by `hyper()`. `run` applies it eagerly to
Vectors of any type; compiled training steps trace the same function (see
`optimizer/_fused.py`). Modules that cannot be written so (e.g. noise drawn
on the host) override `run` and set no `step`.
"""

from __future__ import annotations

from abc import ABCMeta
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._arrays import Step
from flwr_declearn.optimizer._backend import run_step
from flwr_declearn.optimizer._checks import init_config, required_state, vector_or_none
from flwr_declearn.utils import create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = ["OptiModule"]


@create_types_registry(name="OptiModule")
class OptiModule(RegisteredPlugin, metaclass=ABCMeta, register=False):
    """Plug-in algorithm that transforms gradients on their way to updates.

    An `Optimizer` chains modules: each `run` takes the output of the
    previous one. Learning rate and decoupled weight decay are applied by
    the `Optimizer`, after all modules.

    Client/server module pairs share information through auxiliary
    variables, routed by their common `aux_name`:

    - a client module's `collect_aux_var` returns a dict (or None), and
      its `process_aux_var` receives the dict its server counterpart
      emitted for that client;
    - a server module's `collect_aux_var` returns None, one dict for all
      clients, or a `PerClientAuxVar` (`{client_id: dict}`) for distinct
      values; its `process_aux_var` receives `{client_id: client_dict}`.

    Aux-var values may be Vectors, numpy arrays, numbers, strings, lists
    and dicts (see `flwr_declearn.utils.to_jsonable`).

    Subclasses are registered under their `name` in the "OptiModule" group,
    unless declared with `register=False`.
    """

    plugin_group: ClassVar[str] = "OptiModule"

    aux_name: ClassVar[str | None] = None
    """Name shared by a client/server pair of modules to route aux-vars."""

    step: Step | None = None
    """The pure step (a function, or a `staticmethod`); None if `run` is overridden."""

    state_names: tuple[str, ...] = ()
    """Attributes holding the step's state Vectors, in its order (None: zeros)."""

    round_reset: bool = False
    """Whether `on_round_start` resets the states (and counters) to their start."""

    hyper_names: tuple[str, ...] = ()
    """Attributes holding the step's scalars (what `hyper` returns by default)."""

    def hyper(self) -> dict[str, float]:
        """Return the scalars of the next step, by name."""
        names = self.hyper_names
        return dict(zip(names, map(self.__getattribute__, names), strict=True))

    @property
    def fusable(self) -> bool:
        """Whether compiled training steps may run `step` (see `optimizer/_fused.py`)."""
        return self.step is not None

    def run(self, gradients: Vector) -> Vector:
        """Transform input gradients and return a Vector with the same specs."""
        if self.step is None:
            raise NotImplementedError(f"{type(self).__name__} has neither a `step` nor a `run`.")
        states = tuple(map(self.__getattribute__, self.state_names))
        new, out = run_step(self.step, states, gradients, self.hyper())
        self.advance(new)
        return out

    def advance(self, states: tuple[Vector, ...]) -> None:
        """Store the new states of a step that ran (eagerly or compiled)."""
        for name, value in zip(self.state_names, states, strict=True):
            setattr(self, name, value)

    def collect_aux_var(self) -> dict[str, Any] | None:
        """Return aux-vars for the counterpart module (None: nothing to send)."""
        return None

    def process_aux_var(self, aux_var: dict[str, Any]) -> None:
        """Process aux-vars emitted by the counterpart module.

        Raises
        ------
        KeyError
            If an expected aux-var is missing.
        TypeError
            If this module expects no aux-vars, or one has a wrong type.
        """
        raise TypeError(
            f"OptiModule '{self.name}' does not expect auxiliary variables, "
            f"but received {sorted(aux_var) if isinstance(aux_var, dict) else aux_var!r}."
        )

    def on_round_start(self) -> None:
        """Hook called when a training round starts: resets states if `round_reset`."""
        if self.round_reset:
            for name in self.state_names:
                setattr(self, name, None)

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable keyword arguments that rebuild this module."""
        return init_config(self)

    def get_state(self) -> dict[str, Any]:
        """Return the module's inner state (JSON-able via `to_jsonable`)."""
        return {name: getattr(self, name) for name in self.state_names}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore an inner state returned by `get_state` (or by declearn's module).

        Raises
        ------
        KeyError
            If an expected state variable is missing, or the module has no state.
        """
        if not self.state_names:
            if state:
                raise KeyError(
                    f"OptiModule '{self.name}' has no state, but received {sorted(state)}."
                )
            return
        owner = type(self).__name__
        values = required_state(state, self.state_names, owner)
        for name, value in zip(self.state_names, values, strict=True):
            setattr(self, name, vector_or_none(value, name, owner))
