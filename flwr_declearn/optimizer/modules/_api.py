"""`OptiModule`: plug-in gradients-transformation brick of an `Optimizer`."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._checks import pop_state, vector_or_none
from flwr_declearn.optimizer._fused import FusedStep
from flwr_declearn.utils import create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = ["OptiModule", "SingleStateModule"]


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

    @abstractmethod
    def run(self, gradients: Vector) -> Vector:
        """Transform input gradients and return a Vector with the same specs."""

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep | None:
        """Describe the next `run` as a formula for compiled training steps.

        Return None (the default) to have `run` called eagerly instead. The
        step's `commit` must leave the module as `run` would have; nothing
        may change before it is called.

        Parameters
        ----------
        zeros:
            Returns zeros shaped like the gradients (to initialize a state).
        """
        return None

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
        """Hook called when a training round starts (no-op by default)."""
        return None

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-serializable keyword arguments that rebuild this module."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """Return the module's inner state (JSON-able via `to_jsonable`)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore an inner state returned by `get_state`.

        Raises
        ------
        KeyError
            If an expected state variable is missing.
        """
        if state:
            raise KeyError(f"OptiModule '{self.name}' has no state, but received {sorted(state)}.")


class SingleStateModule(OptiModule, register=False):
    """OptiModule with one state Vector `state` (None: zeros), reset per round if `round_reset`.

    Subclasses set `formula` (their fused formula, see `fused_step`) and
    `fused_scalars` (its scalar arguments).
    """

    formula: ClassVar[str]
    state: Vector | None
    round_reset: bool

    @property
    def fused_scalars(self) -> tuple[float, ...]:
        """Scalar arguments of `formula`."""
        return ()

    def fused_step(self, zeros: Callable[[], Vector]) -> FusedStep:
        state = zeros() if self.state is None else self.state
        return FusedStep(self.formula, (state,), self.fused_scalars, self._commit)

    def _commit(self, states: tuple[Vector, ...]) -> None:
        (self.state,) = states

    def on_round_start(self) -> None:
        if self.round_reset:
            self.state = None

    def get_state(self) -> dict[str, Any]:
        return {"state": self.state}

    def set_state(self, state: dict[str, Any]) -> None:
        (value,) = pop_state(state, ("state",), type(self).__name__)
        self.state = vector_or_none(value, "state", type(self).__name__)
