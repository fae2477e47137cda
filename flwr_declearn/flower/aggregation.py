"""Numeric helpers of the server: weighted averages and the FedOpt pseudo-gradient.

Sums run in float64 and results are cast back to each array's dtype
(integer and boolean arrays are rounded to the nearest value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["normalized_weights", "pseudo_gradient", "weighted_average", "weighted_metrics"]


def normalized_weights(counts: Sequence[float]) -> list[float]:
    """Return `counts / sum(counts)`.

    Raises
    ------
    ValueError
        If a count is negative or not finite, or they sum to zero.
    """
    values = [float(count) for count in counts]
    if any(not np.isfinite(val) or val < 0 for val in values):
        raise ValueError(f"Aggregation weights must be finite and non-negative: {values}.")
    total = sum(values)
    if total <= 0:
        raise ValueError("Aggregation weights sum to zero: nothing to average.")
    return [val / total for val in values]


def _cast_back(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "biu":
        value = np.rint(value)
    return value.astype(dtype, copy=False)


def _average64(arrays: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    acc = np.multiply(arrays[0], weights[0], dtype=np.float64)
    for array, weight in zip(arrays[1:], weights[1:], strict=True):
        acc += np.multiply(array, weight, dtype=np.float64)
    return acc


def weighted_average(
    values: Sequence[Mapping[str, np.ndarray]],
    counts: Sequence[float],
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Return the `counts`-weighted average of named arrays.

    Parameters
    ----------
    values:
        Named arrays of each contributor, with the same names, shapes and dtypes.
    counts:
        Weight of each contributor (e.g. its number of training examples).
    names:
        Names to average; defaults to those of the first contributor.
    """
    if not values:
        raise ValueError("Nothing to average: no values were given.")
    weights = normalized_weights(counts)
    keys = list(values[0]) if names is None else list(names)
    return {
        key: _cast_back(_average64([val[key] for val in values], weights), values[0][key].dtype)
        for key in keys
    }


def pseudo_gradient(
    global_weights: Mapping[str, np.ndarray],
    client_weights: Sequence[Mapping[str, np.ndarray]],
    counts: Sequence[float],
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Return the FedOpt pseudo-gradient `sum_k n_k (w_global - w_k) / sum_k n_k`.

    Applying it with a plain SGD step of learning rate 1 yields the weighted
    average of the clients' weights, i.e. FedAvg.

    Parameters
    ----------
    global_weights:
        Global weights the clients started the round from.
    client_weights:
        Named weights returned by each client.
    counts:
        Weight of each client (its number of training examples).
    names:
        Names of the weights to include; defaults to all of `global_weights`.
    """
    if not client_weights:
        raise ValueError("No client weights to compute a pseudo-gradient from.")
    weights = normalized_weights(counts)
    keys = list(global_weights) if names is None else list(names)
    out: dict[str, np.ndarray] = {}
    for key in keys:
        reference = np.asarray(global_weights[key])
        average = _average64([val[key] for val in client_weights], weights)
        out[key] = (reference.astype(np.float64) - average).astype(reference.dtype, copy=False)
    return out


def weighted_metrics(results: Sequence[tuple[int, Mapping[str, object]]]) -> dict[str, float]:
    """Average the numeric metrics that every result reports, weighted by example counts.

    Keys starting with "declearn." (internal payloads) and non-numeric values
    (str, bytes, bool) are ignored.
    """
    results = [(count, metrics) for count, metrics in results if count > 0]
    if not results:
        return {}

    def numeric(value: object) -> bool:
        return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)

    keys = [
        key
        for key, value in results[0][1].items()
        if not key.startswith("declearn.")
        and numeric(value)
        and all(numeric(metrics.get(key)) for _, metrics in results[1:])
    ]
    total = float(sum(count for count, _ in results))
    out: dict[str, float] = {}
    for key in keys:
        acc = 0.0
        for count, metrics in results:
            acc += count * float(metrics[key])  # type: ignore[arg-type]
        out[key] = acc / total
    return out
