"""Compiled training steps: gradients, the modules' steps and the update in one framework call.

Eager jax and tensorflow pay a dispatch per compiled call, and a training step
made of a gradients call, one call per module and an update call costs
several. Models that can (`Model.fused_vector_type` set) run the whole step in
one compiled function instead, given a pure update rule built here from the
modules' own pure steps (`OptiModule.step`):

    rule(weights, grads, (states, scalars)) -> (new_weights, new_states)

The scalars (every module's `hyper()` values, then `lrate` and `w_decay`) are
one array argument, not constants, so that changing rates and step counters
never trigger a new trace; their names are part of the rule's cache key.

The Optimizer falls back to its eager path when a regularizer is set, when a
module is not `fusable` (e.g. noise, drawn on the host), or when a state
Vector is not of the model's type (e.g. just restored from a checkpoint as
numpy); the eager step converts such states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flwr_declearn.data import Batch
from flwr_declearn.model.api import Model, Vector
from flwr_declearn.optimizer._arrays import Backend, Step, zeros_like
from flwr_declearn.optimizer._backend import backend_for
from flwr_declearn.optimizer.modules import OptiModule

__all__ = ["run_fused_step"]

Arrays = dict[str, Any]
Chain = tuple[tuple[Step, tuple[str, ...]], ...]
"""Each module's step and the names of its scalars."""

_RULES: dict[tuple[Backend, Chain, bool], Any] = {}
"""One rule object per (backend, chain, decay): compiled functions keyed on it trace once."""


def _build_rule(backend: Backend, chain: Chain, decay: bool) -> Any:
    def rule(weights: Arrays, grads: Arrays, args: Any) -> tuple[Arrays, Any]:
        states, scalars = args
        direction = backend.arrays(grads)
        new_states, pos = [], 0
        for (step, names), state in zip(chain, states, strict=True):
            hyper = {name: scalars[pos + i] for i, name in enumerate(names)}
            pos += len(names)
            new, direction = step(tuple(backend.arrays(s) for s in state), direction, hyper)
            new_states.append(tuple(n.data for n in new))
        w = backend.arrays(weights)
        if decay:  # w - (lrate * d + wrate * w)
            new_w = w + (direction * -scalars[pos] + w * -scalars[pos + 1])
        else:  # w - lrate * d
            new_w = w - direction * scalars[pos]
        return new_w.data, tuple(new_states)

    return rule


def _aligned(ref: Vector, others: list[Vector]) -> bool:
    """Whether `others` have `ref`'s names, shapes and dtypes."""
    try:
        for vec in others:
            ref.check_specs(vec)
    except ValueError:
        return False
    return True


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
    if vector_type is None or not all(module.fusable for module in modules):
        return False
    backend = backend_for(vector_type)
    if not backend.traceable:
        return False
    template: list[Vector] = []
    states = []
    for module in modules:
        group = []
        for name in module.state_names:
            state = getattr(module, name)
            if state is None:
                template = template or [model.get_weights(trainable=True)]
                state = zeros_like(template[0])
            if type(state) is not vector_type:
                return False  # the eager path converts it (or raises the right error)
            group.append(state)
        states.append(tuple(group))
    known = {id(vec) for vec in verified}  # `verified` keeps them alive: ids are unique
    unchecked = [s for group in states for s in group if id(s) not in known]
    if unchecked and not _aligned(
        template[0] if template else model.get_weights(trainable=True), unchecked
    ):
        return False
    hypers = [module.hyper() for module in modules]
    chain = tuple((m.step, tuple(h)) for m, h in zip(modules, hypers, strict=True) if m.step)
    key = (backend, chain, bool(wrate))
    rule = _RULES.get(key)
    if rule is None:
        rule = _RULES[key] = _build_rule(backend, chain, bool(wrate))
    scalars = [x for hyper in hypers for x in hyper.values()]
    args = (
        tuple(tuple(s.coefs for s in group) for group in states),
        backend.scalar_array([*scalars, lrate, wrate]),
    )
    new_states = model.run_fused_step(batch, sclip, rule, args)
    verified.clear()
    for module, old, group in zip(modules, states, new_states, strict=True):
        vectors = tuple(
            vector_type({k: coefs[k] for k in prev.coefs})  # keep the names' order
            for prev, coefs in zip(old, group, strict=True)
        )
        verified.extend(vectors)
        module.advance(vectors)
    return True
