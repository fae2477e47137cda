"""Client-side checks of what the server sends (and of what the client is about to store).

Every check raises a `RejectedMessage` (a ValueError) naming the fault and
where it lies, e.g. `"the Optimizer config: 'lrate' is nan"`; the client
runs them all before it changes anything.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from flwr_declearn.model.api import Vector, VectorNamesError, VectorSpecError, check_names

__all__ = ["RejectedMessage", "check_aux_var", "check_finite", "check_weights"]


class RejectedMessage(ValueError):
    """The server's message was rejected by the client: nothing was trained or stored."""


def _non_finite_array(array: np.ndarray) -> bool:
    return array.dtype.kind in "fc" and not bool(np.isfinite(array).all())


def find_non_finite(value: Any, path: str = "") -> str | None:
    """Return the path of the first non-finite number in a nested value, or None.

    Walks dicts, lists, tuples, Vectors, numpy arrays and scalars; other leaves
    (str, bool, None, bytes) are ignored.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):
        return None if math.isfinite(float(value)) else path or "value"
    if isinstance(value, np.ndarray | np.generic):
        return path or "value" if _non_finite_array(np.asarray(value)) else None
    if isinstance(value, Vector):
        for name, array in value.pack().items():
            if _non_finite_array(np.asarray(array)):
                return f"{path}['{name}']"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = find_non_finite(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


def check_finite(value: Any, what: str) -> None:
    """Raise a RejectedMessage if `value` holds a NaN or infinite number anywhere."""
    found = find_non_finite(value)
    if found is not None:
        raise RejectedMessage(f"{what} holds a non-finite value at {found}.")


def check_weights(weights: Vector, specs: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
    """Check global weights: names, shapes and dtypes as `specs`, finite values."""
    shapes, dtypes = weights.shapes(), weights.dtypes()
    try:
        check_names(specs, shapes)
    except VectorNamesError as exc:
        raise RejectedMessage(
            f"The global weights do not match the model: {exc.difference}."
        ) from None
    bad = [
        f"'{name}': expected {dtype}{list(shape)}, received {dtypes[name]}{list(shapes[name])}"
        for name, (shape, dtype) in sorted(specs.items())
        if tuple(shapes[name]) != tuple(shape) or dtypes[name] != dtype
    ]
    if bad:
        raise RejectedMessage("The global weights do not match the model: " + "; ".join(bad) + ".")
    check_finite(weights, "The global weights")


def check_aux_var(
    aux: Any, reference: Vector, max_norm: float | None = None
) -> dict[str, dict[str, Any]]:
    """Check the server's aux-vars: `{aux_name: {key: value}}`, Vectors as the trainable weights.

    Every Vector must have the specs of `reference` (the trainable weights,
    as `Vector.check_specs` sees them) and, if `max_norm` is set, an L2 norm
    of at most `max_norm`; every number must be finite.
    """
    if not isinstance(aux, dict) or not all(
        isinstance(name, str) and isinstance(val, dict) for name, val in aux.items()
    ):
        raise RejectedMessage("The server's aux-vars must be a dict {aux_name: dict}.")
    for name, payload in aux.items():
        for key, value in payload.items():
            where = f"The server's aux-var '{name}'['{key}']"
            if isinstance(value, Vector):
                try:
                    reference.check_specs(value)
                except (VectorSpecError, TypeError) as exc:
                    raise RejectedMessage(
                        f"{where} does not match the trainable weights: {exc}"
                    ) from None
            check_finite(value, where)
            if max_norm is not None and isinstance(value, Vector):
                norm = math.sqrt(sum(float(np.vdot(a, a)) for a in value.pack().values()))
                if not norm <= max_norm:
                    raise RejectedMessage(
                        f"{where} has an L2 norm of {norm:.4g}, above max_aux_norm={max_norm}."
                    )
    return aux
