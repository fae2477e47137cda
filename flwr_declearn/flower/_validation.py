"""Boundary checks of what a client sends the server (example count, weights, aux-vars).

Every check raises a `ValueError` whose message names the fault; the core
logs it once with the client's id and skips that client for the round.
Nothing here changes any server state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from flwr_declearn.flower import wire
from flwr_declearn.model.api import Vector, VectorNamesError, VectorSpecError, check_names
from flwr_declearn.model.numpy import NumpyVector

__all__ = [
    "ClientLimits",
    "SpecMismatchError",
    "check_aux_var",
    "check_count",
    "check_weights",
    "decode_aux_var",
    "decode_weights",
    "max_magnitude",
]

EXPECTED_AUX_KEYS: dict[str, frozenset[str]] = {"scaffold": frozenset({"delta"})}
"""Keys each client payload of a known aux_name must hold (exactly); other aux_names are
checked by their server module (`process_aux_var`, tried client by client)."""


class SpecMismatchError(VectorSpecError):
    """A client's weights differ in names, shapes or dtypes from the global model's."""


@dataclasses.dataclass(frozen=True)
class ClientLimits:
    """Bounds on what a client may send.

    Attributes
    ----------
    max_examples:
        Largest accepted example count (counts must be positive ints).
    max_abs_value:
        Largest accepted magnitude of a weight or aux-var value; None: per
        dtype, `sqrt(finfo.max) / 4` for float32 and float64 (so that squares,
        as Adam's second moments, cannot overflow), any finite value otherwise.
    max_update_norm:
        Optional bound on the L2 norm of a client's update `w_k - w_global`
        over the trainable weights; larger updates are rejected.
    max_aux_norm:
        Optional bound on the L2 norm of every aux-var Vector (e.g. a SCAFFOLD delta).
    """

    max_examples: int = 10**9
    max_abs_value: float | None = None
    max_update_norm: float | None = None
    max_aux_norm: float | None = None

    def __post_init__(self) -> None:
        count = self.max_examples
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"'max_examples' must be a positive int, not {count!r}.")
        for name in ("max_abs_value", "max_update_norm", "max_aux_norm"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < math.inf
            ):
                raise ValueError(
                    f"'{name}' must be a positive finite float or None, not {value!r}."
                )

    def value_bound(self, dtype: np.dtype) -> float:
        """Largest magnitude accepted for values of `dtype`."""
        if self.max_abs_value is not None:
            return self.max_abs_value
        if dtype in (np.float32, np.float64):
            return math.sqrt(float(np.finfo(dtype).max)) / 4
        return math.inf


def check_count(count: Any, limits: ClientLimits) -> int:
    """Return a client's example count as an int, if it is one in `[1, max_examples]`."""
    if (
        isinstance(count, float | np.floating)
        and math.isfinite(count)
        and float(count).is_integer()
    ):
        count = int(count)
    if not isinstance(count, int | np.integer) or isinstance(count, bool | np.bool_):
        raise ValueError(f"num_examples must be a positive int, not {count!r}")
    if not 1 <= int(count) <= limits.max_examples:
        raise ValueError(
            f"num_examples must be a positive int of at most {limits.max_examples}, not {count!r}"
        )
    return int(count)


def _check_values(name: str, array: np.ndarray, limits: ClientLimits, what: str) -> None:
    if array.dtype.kind != "f" or array.size == 0:
        return
    peak = max_magnitude(array)
    if not math.isfinite(peak):
        raise ValueError(f"{what} '{name}' holds non-finite values")
    bound = limits.value_bound(array.dtype)
    if peak > bound:
        raise ValueError(
            f"{what} '{name}' holds a value of magnitude {peak:.3g} (bound {bound:.3g})"
        )


_BLOCK = 1 << 16
"""Elements per block of the value scan (read once from memory, then reduced in cache)."""


def max_magnitude(array: np.ndarray) -> float:
    """Largest magnitude in a float array, NaN if it holds a NaN (one pass, no temporary)."""
    values = np.ravel(array)  # a view for C-contiguous arrays
    peak = 0.0
    for start in range(0, values.size, _BLOCK):
        block = values[start : start + _BLOCK]
        low, high = float(block.min()), float(block.max())  # NaN if the block holds one
        peak = max(peak, -low, high) if low == low and high == high else math.nan
        if peak != peak:
            break
    return peak


def check_weights(
    weights: Mapping[str, np.ndarray],
    reference: NumpyVector,
    trainable: Sequence[str],
    limits: ClientLimits,
) -> None:
    """Check a client's named weights against the global ones (names, specs, values, update norm).

    Raises
    ------
    SpecMismatchError
        If names, shapes or dtypes differ from the global model's.
    ValueError
        If a value is non-finite or out of bounds, or the update is too large.
    """
    try:
        reference.check_specs(NumpyVector(dict(weights)))
    except ValueError as exc:
        raise SpecMismatchError(f"its weights do not match the global model: {exc}") from None
    for name, array in weights.items():
        _check_values(name, array, limits, "weight")
    if limits.max_update_norm is not None:
        norm = math.sqrt(
            sum(
                float(np.sum(np.square(weights[name].astype(np.float64) - reference.coefs[name])))
                for name in trainable
            )
        )
        if not norm <= limits.max_update_norm:
            raise ValueError(
                f"its update has an L2 norm of {norm:.3g} (bound {limits.max_update_norm:.3g})"
            )


def check_aux_var(
    aux: Any,
    aux_names: Collection[str],
    trainable: NumpyVector,
    limits: ClientLimits,
) -> dict[str, dict[str, Any]]:
    """Check a client's decoded aux-vars `{aux_name: {key: value}}`; return them (Vectors as numpy).

    Every aux_name must be one of the server Optimizer's; known aux_names must
    hold exactly their expected keys; every Vector must have the trainable
    weights' names and specs, finite values within bounds, and an L2 norm of
    at most `max_aux_norm`; every other value must be a finite real number.

    Raises
    ------
    ValueError
        Naming the faulty entry.
    """
    if not isinstance(aux, dict) or not all(isinstance(v, dict) for v in aux.values()):
        raise ValueError("aux-vars must be a dict of dicts {aux_name: {key: value}}")
    unknown = sorted(set(aux) - set(aux_names))
    if unknown:
        raise ValueError(
            f"aux-vars for unknown aux_name(s) {unknown}; the server expects {sorted(aux_names)}"
        )
    out: dict[str, dict[str, Any]] = {}
    for aux_name, payload in aux.items():
        expected = EXPECTED_AUX_KEYS.get(aux_name)
        if expected is not None and set(payload) != expected:
            raise ValueError(
                f"aux-vars '{aux_name}' must hold the keys {sorted(expected)}, "
                f"not {sorted(payload)}"
            )
        checked: dict[str, Any] = {}
        for key, value in payload.items():
            where = f"{aux_name}.{key}"
            if isinstance(value, Vector):
                checked[key] = _check_aux_vector(where, value, trainable, limits)
            elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            ):
                if not abs(float(value)) <= limits.value_bound(np.dtype(np.float64)):
                    raise ValueError(f"aux-var '{where}' is not finite or out of bounds: {value!r}")
                checked[key] = value
            else:
                raise ValueError(
                    f"aux-var '{where}' must be a Vector or a number, not {type(value).__name__}"
                )
        out[aux_name] = checked
    return out


def _check_aux_vector(
    where: str, value: Vector, trainable: NumpyVector, limits: ClientLimits
) -> NumpyVector:
    vector = value if isinstance(value, NumpyVector) else NumpyVector(value.pack())
    try:
        trainable.check_specs(vector)
    except ValueError as exc:
        raise ValueError(f"aux-var '{where}' does not match the trainable weights: {exc}") from None
    for name, array in vector.coefs.items():
        _check_values(f"{where}[{name}]", array, limits, "aux-var")
    if limits.max_aux_norm is not None:
        norm = math.sqrt(
            sum(float(np.vdot(a.astype(np.float64), a)) for a in vector.coefs.values())
        )
        if not norm <= limits.max_aux_norm:
            raise ValueError(
                f"aux-var '{where}' has an L2 norm of {norm:.3g} (bound {limits.max_aux_norm:.3g})"
            )
    return vector


def decode_weights(payloads: Mapping[str, Any], specs: wire.WeightSpecs) -> dict[str, np.ndarray]:
    """Decode `.npy` payloads by weight name, each header checked against `specs` first.

    Raises
    ------
    SpecMismatchError
        If the names, or a declared shape or dtype, differ from `specs`.
    ValueError
        If a payload is not a valid `.npy` array of the size its header declares.
    """
    try:
        check_names(specs, payloads)
    except VectorNamesError as exc:
        raise SpecMismatchError(f"Weight names do not match the model: {exc.difference}.") from None
    out: dict[str, np.ndarray] = {}
    for name in sorted(specs):
        try:
            out[name] = wire.decode_npy(payloads[name], *specs[name], name=name)
        except VectorSpecError as exc:
            raise SpecMismatchError(f"Weight arrays do not match the model: {exc}.") from None
        except ValueError as exc:
            raise ValueError(f"undecodable weights: {exc}") from None
    return out


def decode_aux_var(payload: Any) -> Any:
    """Decode a client's wire-encoded aux-vars (bytes), or raise a ValueError."""
    if not isinstance(payload, bytes):
        raise ValueError(f"aux-vars must be bytes, not {type(payload).__name__}")
    return wire.decode(payload, NumpyVector)
