"""Compiled training steps: gradients, module chain and update in one framework call.

Eager jax and tensorflow pay a dispatch per compiled call, and a training step
made of a gradients call, one kernel per module and an update call costs
several. Models that can (`Model.fused_vector_type` set) run the whole step in
one compiled function instead, given a pure update rule built here:

    rule(weights, grads, (states, scalars)) -> (new_weights, new_states)

Each module describes its next `run` as a `FusedStep`: the name of a formula
of `_kernels_compiled.build_formulas` (`formula(*states, g, *scalars) ->
(*new_states, out)`, or `out` alone for stateless modules), its current state
Vectors and per-step scalars. Scalars are arguments, not constants, so that
changing rates and step counters never trigger a new trace.

The Optimizer falls back to its eager path when a regularizer is set, when a
module has no formula (e.g. noise, which draws random numbers on the host),
or when a state Vector is not of the model's type (e.g. just restored from a
checkpoint as numpy); the eager step converts such states.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from flwr_declearn.data import Batch
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer._kernels import _FAST_KERNELS, aligned

if TYPE_CHECKING:
    from flwr_declearn.optimizer.modules import OptiModule

__all__ = ["FusedStep", "run_fused_step"]

Arrays = dict[str, Any]
Rule = Callable[[Arrays, Arrays, Any], tuple[Arrays, tuple[tuple[Arrays, ...], ...]]]


class FusedStep(NamedTuple):
    """A module's next `run`, as a pure formula for compiled training steps.

    Attributes
    ----------
    formula:
        Name of a formula of `build_formulas`, called as
        `formula(*states, gradients, *scalars)`.
    states:
        Current state Vectors (in the formula's order); new ones are
        returned by the formula before its output.
    scalars:
        Per-step scalar arguments.
    commit:
        Called with the new state Vectors once the step ran: it must leave
        the module as `run` would have.
    """

    formula: str
    states: tuple[Vector, ...] = ()
    scalars: tuple[float, ...] = ()
    commit: Callable[[tuple[Vector, ...]], None] | None = None


def _build_rule(
    formulas: Mapping[str, Callable[..., Any]],
    names: tuple[str, ...],
    n_scalars: tuple[int, ...],
    decay: bool,
) -> Rule:
    """Return the pure update rule chaining the formulas `names`, then descending.

    Its args are `(states, scalars)`: per formula, a tuple of state dicts; and
    one 1-d array of every formula's scalars in a row, then `lrate` and
    `wrate` (one array: one host-to-device transfer per step).
    """

    def rule(weights: Arrays, grads: Arrays, args: Any) -> tuple[Arrays, Any]:
        states, scalars = args
        direction = grads
        new_states = []
        pos = 0
        for name, state, size in zip(names, states, n_scalars, strict=True):
            out = formulas[name](*state, direction, *(scalars[pos + i] for i in range(size)))
            pos += size
            if state:
                *new, direction = out
                new_states.append(tuple(new))
            else:
                direction = out
                new_states.append(())
        if decay:
            new_weights = formulas["descend_decay"](
                weights, direction, scalars[pos], scalars[pos + 1]
            )
        else:
            new_weights = formulas["descend"](weights, direction, scalars[pos])
        return new_weights, tuple(new_states)

    return rule


_RULES: dict[tuple[Any, ...], Rule] = {}
"""(kernels class, formula names, decay) -> rule; one object per chain, so compiled
functions keyed on the rule are traced once."""


@cache
def _kernels_for(vector_type: type[Vector]) -> Any:
    module = _FAST_KERNELS.get(vector_type.__name__)
    if module is None:
        return None
    kernels = importlib.import_module(module).Kernels
    return kernels if issubclass(vector_type, kernels.vector_type) else None


def _plan(
    modules: Sequence[OptiModule], model: Model[Any], vector_type: type[Vector]
) -> list[FusedStep] | None:
    """Each module's FusedStep, or None if one has none or holds foreign states."""
    template: list[Vector] = []

    def zeros() -> Vector:
        from flwr_declearn.optimizer._kernels import zeros_like

        if not template:
            template.append(model.get_weights(trainable=True))
        return zeros_like(template[0])

    steps = []
    for module in modules:
        step = module.fused_step(zeros)
        if step is None:
            return None
        for state in step.states:
            if type(state) is not vector_type:
                return None
        steps.append(step)
    return steps


def run_fused_step(
    model: Model[Any],
    batch: Batch,
    sclip: float | None,
    modules: Sequence[OptiModule],
    lrate: float,
    wrate: float,
    verified: list[Vector],
) -> bool:
    """Run one compiled step of `model` if it and every module can; return whether it ran.

    `verified` holds the state Vectors known to match the model's trainable
    weights (those the model returned last); others are checked first. It is
    updated in place.
    """
    vector_type = getattr(model, "fused_vector_type", None)
    if vector_type is None:
        return False
    kernels = _kernels_for(vector_type)
    if kernels is None:
        return False
    steps = _plan(modules, model, vector_type)
    if steps is None:
        return False
    states = [step.states for step in steps]
    known = {id(vec) for vec in verified}  # `verified` keeps them alive: ids are unique
    unchecked = [s for group in states for s in group if id(s) not in known]
    if unchecked and not aligned(model.get_weights(trainable=True), *unchecked):
        return False  # the eager path raises the right error (or converts)
    names = tuple(step.formula for step in steps)
    n_scalars = tuple(len(step.scalars) for step in steps)
    key = (kernels, names, n_scalars, bool(wrate))
    rule = _RULES.get(key)
    if rule is None:
        rule = _RULES[key] = _build_rule(kernels.formulas, names, n_scalars, bool(wrate))
    scalars = [x for step in steps for x in step.scalars]
    args = (
        tuple(tuple(s.coefs for s in group) for group in states),
        kernels.scalar_array([*scalars, lrate, wrate]),
    )
    new_states = model.run_fused_step(batch, sclip, rule, args)
    verified.clear()
    for step, old, group in zip(steps, states, new_states, strict=True):
        vectors = tuple(
            vector_type({k: coefs[k] for k in prev.coefs})  # keep the names' order
            for prev, coefs in zip(old, group, strict=True)
        )
        verified.extend(vectors)
        if step.commit is not None:
            step.commit(vectors)
    return True
