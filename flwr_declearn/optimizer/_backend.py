"""Which `Backend` runs steps on a Vector type, and the eager step runner modules call.

Backends are looked up by Vector type and imported on first use, so that
each framework is imported only once one of its Vectors shows up.
"""

from __future__ import annotations

from functools import cache

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer._arrays import Backend, Hyper, Step, _same_layout, align

__all__ = ["backend_for", "run_step"]


@cache
def backend_for(vector_type: type[Vector]) -> Backend:
    """Return the backend of `vector_type` (the generic one if it has no faster one)."""
    cls: type[Backend] = Backend
    name = vector_type.__name__
    if name == "TorchVector":
        from flwr_declearn.optimizer._backend_torch import TorchBackend as cls
    elif name == "JaxNumpyVector":
        from flwr_declearn.optimizer._backend_jax import JaxBackend as cls
    elif name == "TensorflowVector":
        from flwr_declearn.optimizer._backend_tensorflow import TensorflowBackend as cls
    if cls is not Backend and not issubclass(vector_type, cls.vector_type):
        cls = Backend
    return cls(vector_type)


def run_step(
    step: Step, states: tuple[Vector | None, ...], gradients: Vector, hyper: Hyper
) -> tuple[tuple[Vector, ...], Vector]:
    """Run a pure step eagerly on Vectors; return the new states and the output.

    States that are None start at zeros; others are aligned to the gradients
    (see `align`), which raises on incompatible types or specs.
    """
    vtype = type(gradients)
    for state in states:  # no `any(...)` nor comprehensions (frames): this runs at every step
        if type(state) is not vtype or not _same_layout(gradients, state):
            gradients, states = align(gradients, states)
            vtype = type(gradients)
            break
    return backend_for(vtype).run(step, states, gradients, hyper)  # type: ignore[arg-type]
