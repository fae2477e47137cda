"""Small validators shared by optimizer plug-ins (clear errors on bad input)."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Mapping
from typing import Any

from flwr_declearn.model.api import Vector

__all__ = ["check_beta", "check_positive", "init_config", "required_state", "vector_or_none"]


def init_config(obj: object) -> dict[str, Any]:
    """Return `obj`'s constructor arguments, read from the attributes of the same names."""
    params = list(inspect.signature(type(obj).__init__).parameters.values())[1:]  # no self
    return {
        p.name: getattr(obj, p.name)
        for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def check_beta(value: Any, name: str = "beta") -> float:
    """Return `value` as a float in [0, 1), or raise naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a float in [0, 1), not {value!r}.")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"'{name}' must be in [0, 1), got {value!r}.")
    return float(value)


def check_positive(value: Any, name: str, strict: bool = True) -> float:
    """Return `value` as a float > 0 (>= 0 if not `strict`), or raise naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a real number, not {value!r}.")
    if float(value) < 0 or (strict and float(value) == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"'{name}' must be {bound}, got {value!r}.")
    return float(value)


def vector_or_none(value: Any, key: str, owner: str) -> Vector | None:
    """Validate a state value that is a Vector, or None / 0 for "not initialized yet".

    A declearn Vector (from a declearn module's `get_state`) becomes ours,
    of the type that wraps its arrays.
    """
    if value is None or isinstance(value, Vector):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0:
        return None  # declearn's conventional 0.0 for a zero-initialized state
    coefs = getattr(value, "coefs", None)
    if type(value).__module__.startswith("declearn.") and isinstance(coefs, Mapping) and coefs:
        return Vector.build(coefs)
    raise TypeError(
        f"{owner}: state variable '{key}' must be a Vector or None, not {type(value).__qualname__}."
    )


def required_state(state: Mapping[str, Any], keys: tuple[str, ...], owner: str) -> list[Any]:
    """Return `state[key]` for each key, raising a KeyError naming the missing ones."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}: state must be a dict, not {type(state).__qualname__}.")
    missing = [key for key in keys if key not in state]
    if missing:
        raise KeyError(f"{owner}: missing state variable(s) {missing}.")
    return [state[key] for key in keys]
