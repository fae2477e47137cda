"""Plain-JAX backend (needs jax, from the 'haiku' extra): `JaxModel`.

`JaxModel` wraps an apply function and a params pytree (plain JAX, or flax
with its state split off). Its Vector is `JaxNumpyVector`. Imported lazily:
this package itself imports without jax.
"""

from typing import Any

__all__ = ["JaxModel", "JaxNumpyVector"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flwr_declearn.utils._imports import require

        require("jax", "haiku")
        from flwr_declearn.model.jax import _model

        return getattr(_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
