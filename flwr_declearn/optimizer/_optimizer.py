"""`Optimizer`: gradient descent assembled from regularizers, modules and rate schedulers."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from flwr_declearn.data import Batch
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer._aux import merge_client_aux_var, split_server_aux_var
from flwr_declearn.optimizer._fused import run_fused_step
from flwr_declearn.optimizer.modules import OptiModule
from flwr_declearn.optimizer.regularizers import Regularizer
from flwr_declearn.optimizer.schedulers import ConstantScheduler, Scheduler
from flwr_declearn.utils import build_from_spec

__all__ = ["Optimizer", "SupportsUpdates"]


VectorT = TypeVar("VectorT", bound=Vector)


@runtime_checkable
class SupportsUpdates(Protocol[VectorT]):
    """What an Optimizer needs of a model to turn gradients into updates.

    Every `Model` satisfies it; so does any holder of weights (e.g. a
    server's global weights) that can return them and add updates to them.
    Generic in the Vector type (`SupportsUpdates[TorchVector]`...); bare
    `SupportsUpdates` accepts any.
    """

    def get_weights(self, trainable: bool = False) -> VectorT:
        """Return the weights, restricted to the trainable ones if `trainable`."""
        ...

    def apply_updates(self, updates: VectorT, scale: float = 1.0) -> None:
        """Add `scale * updates` to the trainable weights, in place."""
        ...


_CONFIG_KEYS = ("lrate", "w_decay", "regularizers", "modules")


def _parse_rate(value: Any, name: str) -> Scheduler:
    """Build the Scheduler of a rate given as a number, a Scheduler or a spec."""
    if isinstance(value, Scheduler):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return ConstantScheduler(float(value))
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        return Scheduler.from_specs(value[0], dict(value[1] or {}))  # type: ignore[no-any-return]
    raise TypeError(
        f"Optimizer '{name}' must be a number, a Scheduler or a [name, config] spec, not {value!r}."
    )


@cache
def _takes_scale(model_type: type[Any]) -> bool:
    """Whether `model_type.apply_updates` accepts a `scale` argument (declearn's does not)."""
    try:
        params = inspect.signature(model_type.apply_updates).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return "scale" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _rate_config(scheduler: Scheduler) -> Any:
    if type(scheduler) is ConstantScheduler:
        return scheduler.base
    return [scheduler.name, scheduler.get_config()]


class Optimizer:
    """Gradient descent whose gradient-to-update rule is made of plug-ins.

    A step turns gradients `g` into updates:

        g <- regularizer(g, w)    for each regularizer, in order
        g <- module(g)            for each module, in order
        updates = -(lrate * g + w_decay * w)

    where `w` are the trainable weights (only fetched when a regularizer or
    a non-zero `w_decay` needs them) and `w_decay` is a decoupled weight
    decay (Loshchilov & Hutter, 2019). Both rates may follow schedulers;
    each step uses the value of its schedulers at that step and round.

    Parameters
    ----------
    lrate:
        Learning rate: a number, a `Scheduler`, or a `[name, config]` spec.
    w_decay:
        Decoupled weight decay rate, in the same forms.
    regularizers:
        Regularizers, each an instance, a registered name or a
        `[name, config]` spec.
    modules:
        OptiModules, in the same forms.

    Raises
    ------
    ValueError
        If two modules share an `aux_name`.
    """

    def __init__(
        self,
        lrate: float | Scheduler | Sequence[Any],
        w_decay: float | Scheduler | Sequence[Any] = 0.0,
        regularizers: Sequence[Regularizer | str | Sequence[Any]] | None = None,
        modules: Sequence[OptiModule | str | Sequence[Any]] | None = None,
    ) -> None:
        self._lrate_scheduler = _parse_rate(lrate, "lrate")
        self._wrate_scheduler = _parse_rate(w_decay, "w_decay")
        self.regularizers: list[Regularizer] = [
            build_from_spec(spec, "Regularizer") for spec in (regularizers or [])
        ]
        self.modules: list[OptiModule] = [
            build_from_spec(spec, "OptiModule") for spec in (modules or [])
        ]
        self._aux_modules: dict[str, OptiModule] = {}
        for module in self.modules:
            key = module.aux_name or module.name
            if key in self._aux_modules and module.aux_name is not None:
                raise ValueError(
                    f"Modules '{self._aux_modules[key].name}' and '{module.name}' share the "
                    f"aux_name '{key}': one Optimizer may hold only one of them."
                )
            self._aux_modules.setdefault(key, module)
        self._fused_states: list[Vector] = []  # module states a fused step returned

    # -- rates -----------------------------------------------------------------------------------

    @property
    def lrate(self) -> float:
        """Learning rate the next step will use."""
        return self._lrate_scheduler.current_value()

    @property
    def w_decay(self) -> float:
        """Weight decay rate the next step will use."""
        return self._wrate_scheduler.current_value()

    # -- training --------------------------------------------------------------------------------

    def _direction(
        self, model: SupportsUpdates[Any], gradients: Vector
    ) -> tuple[Vector, float, float, Vector | None]:
        """Run regularizers and modules; return `(direction, lrate, w_decay, weights)`.

        Advances the rate schedulers by one step. `weights` is None unless
        a regularizer or weight decay needed them.
        """
        lrate = self._lrate_scheduler.get_next_rate()
        wrate = self._wrate_scheduler.get_next_rate()
        weights = None
        if self.regularizers or wrate:
            weights = model.get_weights(trainable=True)
            for regularizer in self.regularizers:
                gradients = regularizer.run(gradients, weights)
        for module in self.modules:
            gradients = module.run(gradients)
        return gradients, lrate, wrate, weights

    def compute_updates_from_gradients(
        self, model: SupportsUpdates[Any], gradients: Vector
    ) -> Vector:
        """Return the updates to add to `model`'s trainable weights, given its gradients.

        Advances the rate schedulers by one step.
        """
        return self._updates(*self._direction(model, gradients))

    @staticmethod
    def _updates(direction: Vector, lrate: float, wrate: float, weights: Vector | None) -> Vector:
        """`-(lrate * direction + w_decay * weights)`."""
        updates = direction * -lrate
        if wrate:
            updates = weights * -wrate + updates  # type: ignore[operator]
        return updates

    def apply_gradients(self, model: SupportsUpdates[Any], gradients: Vector) -> None:
        """Compute updates from `gradients` and apply them to `model`.

        Without weight decay, the learning rate is applied by the model in
        the same pass as the update (`model.apply_updates(d, scale=-lrate)`),
        unless its `apply_updates` takes no `scale` (a model written for
        declearn): it then gets the updates, as declearn gives them.
        """
        direction, lrate, wrate, weights = self._direction(model, gradients)
        if wrate or not _takes_scale(type(model)):
            model.apply_updates(self._updates(direction, lrate, wrate, weights))
        else:
            model.apply_updates(direction, scale=-lrate)

    def run_train_step(self, model: Model, batch: Batch, sclip: float | None = None) -> None:
        """Train `model` (in place) for one step on an `(inputs, y_true, s_wght)` batch.

        `sclip` optionally bounds the L2 norm of sample-wise gradients (before
        averaging). Models that support it (see `Model.run_fused_step`) run
        gradients, modules and update as one compiled call when every module
        is `fusable` and no regularizer is set; the result is the same.
        """
        if not self.regularizers and run_fused_step(
            model, batch, sclip, self.modules, self.lrate, self.w_decay, self._fused_states
        ):
            self._lrate_scheduler.get_next_rate()
            self._wrate_scheduler.get_next_rate()
            return
        self.apply_gradients(model, model.compute_batch_gradients(batch, max_norm=sclip))

    def start_round(self) -> None:
        """Signal a new training round to schedulers, regularizers and modules."""
        self._lrate_scheduler.on_round_start()
        self._wrate_scheduler.on_round_start()
        for regularizer in self.regularizers:
            regularizer.on_round_start()
        for module in self.modules:
            module.on_round_start()

    # -- auxiliary variables ---------------------------------------------------------------------

    def collect_aux_var(self) -> dict[str, Any]:
        """Return `{aux_name: aux}` for the modules that emit aux-vars.

        `aux_name` is the module's `aux_name`, or its `name` if it has none.
        On a server, `aux` may be a `PerClientAuxVar`; see
        `split_server_aux_var`.
        """
        aux_var: dict[str, Any] = {}
        for module in self.modules:
            aux = module.collect_aux_var()
            if aux is None:
                continue
            key = module.aux_name or module.name
            if key in aux_var:
                raise ValueError(f"Several modules emitted aux-vars under the name '{key}'.")
            aux_var[key] = aux
        return aux_var

    def process_aux_var(self, aux_var: Mapping[str, Any]) -> None:
        """Pass received aux-vars to the modules, routed by `aux_name`.

        On a client, `aux_var` is `{aux_name: dict}` (one payload of
        `split_server_aux_var`). On a server, it is
        `{aux_name: {client_id: dict}}` (see `merge_client_aux_var`).

        Raises
        ------
        KeyError
            If an `aux_name` matches no module of this Optimizer.
        """
        if not isinstance(aux_var, Mapping):
            raise TypeError(f"Aux-vars must be a dict, not {type(aux_var).__qualname__}.")
        unknown = [name for name in aux_var if name not in self._aux_modules]
        if unknown:
            raise KeyError(
                f"Received auxiliary variables for unknown aux_name(s) {unknown}; "
                f"this Optimizer's modules accept {sorted(self._aux_modules)}."
            )
        for name, aux in aux_var.items():
            self._aux_modules[name].process_aux_var(aux)

    split_server_aux_var = staticmethod(split_server_aux_var)
    merge_client_aux_var = staticmethod(merge_client_aux_var)

    # -- config and state ------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Return a JSON-serializable config, in declearn's format.

        `{"lrate": number | [name, config], "w_decay": ...,
        "regularizers": [[name, config], ...], "modules": [[name, config], ...]}`
        """
        return {
            "lrate": _rate_config(self._lrate_scheduler),
            "w_decay": _rate_config(self._wrate_scheduler),
            "regularizers": [[reg.name, reg.get_config()] for reg in self.regularizers],
            "modules": [[mod.name, mod.get_config()] for mod in self.modules],
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """Build an Optimizer from a `get_config` output (or a declearn Optimizer config).

        Raises
        ------
        KeyError
            If `config` lacks "lrate" or holds unknown keys.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"Optimizer config must be a dict, not {type(config).__qualname__}.")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise KeyError(f"Unknown Optimizer config key(s) {unknown}; expected {_CONFIG_KEYS}.")
        if "lrate" not in config:
            raise KeyError("Optimizer config lacks the required 'lrate' key.")
        return cls(**config)

    def get_state(self) -> dict[str, Any]:
        """Return the schedulers' counters and the modules' states (JSON-able via `to_jsonable`)."""
        return {
            "lrate": self._lrate_scheduler.get_state(),
            "w_decay": self._wrate_scheduler.get_state(),
            "modules": [[mod.name, mod.get_state()] for mod in self.modules],
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore a `get_state` output (ours or declearn's); on error, the previous state is kept.

        Raises
        ------
        KeyError
            If a field is missing or the modules differ from this Optimizer's.
        RuntimeError
            If restoring `state` failed and so did restoring the previous
            state (a bug in a plug-in's `set_state`); the first error is
            chained.
        """
        for key in ("lrate", "w_decay", "modules"):
            if key not in state:
                raise KeyError(f"Optimizer state lacks the '{key}' field.")
        modules = state["modules"]
        names = [mod.name for mod in self.modules]
        try:
            got = [item[0] for item in modules]
        except (TypeError, IndexError, KeyError):
            raise TypeError("Optimizer state 'modules' must be a list of [name, state].") from None
        if got != names:
            raise KeyError(f"Optimizer state is for modules {got}, but this one has {names}.")
        previous = self.get_state()
        try:
            self._set_state(state)
        except Exception as exc:
            try:
                self._set_state(previous)
            except Exception as rollback_exc:
                raise RuntimeError(
                    f"Optimizer.set_state failed ({exc!r}), and restoring the previous state "
                    f"failed too ({rollback_exc!r}): this Optimizer's state is undefined."
                ) from exc
            raise

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self._lrate_scheduler.set_state(state["lrate"])
        self._wrate_scheduler.set_state(state["w_decay"])
        for module, (_, mod_state) in zip(self.modules, state["modules"], strict=True):
            module.set_state(mod_state)

    def __repr__(self) -> str:
        cfg = self.get_config()
        return (
            f"Optimizer(lrate={cfg['lrate']!r}, w_decay={cfg['w_decay']!r}, "
            f"regularizers={cfg['regularizers']!r}, modules={cfg['modules']!r})"
        )
