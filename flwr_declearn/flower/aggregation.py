"""Numeric helpers of the server: weighted averages, the FedOpt pseudo-gradient, metrics.

Sums run in float64 (the running sum of `aggregators.WeightedMean`, the one
place the formula lives) and results are cast back to each array's dtype
(integer and boolean arrays are rounded to the nearest value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from flwr_declearn.flower.aggregators import Contribution, WeightedMean
from flwr_declearn.flower.protocol import is_internal_key

__all__ = ["pseudo_gradient", "weighted_average", "weighted_metrics"]


def _cast_back(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "biu":
        value = np.rint(value)
    return value.astype(dtype, copy=False)


def _check_counts(counts: Sequence[float]) -> None:
    values = [float(count) for count in counts]
    if any(not np.isfinite(val) or val < 0 for val in values):
        raise ValueError(f"Aggregation weights must be finite and non-negative: {values}.")
    if sum(values) <= 0:
        raise ValueError("Aggregation weights sum to zero: nothing to average.")


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
    _check_counts(counts)
    keys = list(values[0]) if names is None else list(names)
    contributions = (
        Contribution(str(idx), count, {key: np.asarray(val[key], np.float64) for key in keys})
        for idx, (val, count) in enumerate(zip(values, counts, strict=True))
    )
    average = WeightedMean().aggregate(contributions, keys, ())
    return {key: _cast_back(average[key], np.asarray(values[0][key]).dtype) for key in keys}


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
    _check_counts(counts)
    keys = list(global_weights) if names is None else list(names)
    glob = {key: np.asarray(global_weights[key], np.float64) for key in keys}
    contributions = (
        Contribution(str(idx), count, {key: glob[key] - client[key] for key in keys})
        for idx, (client, count) in enumerate(zip(client_weights, counts, strict=True))
    )
    gradient = WeightedMean().aggregate(contributions, keys, ())
    return {
        key: gradient[key].astype(np.asarray(global_weights[key]).dtype, copy=False) for key in keys
    }


def weighted_metrics(results: Sequence[tuple[int, Mapping[str, object]]]) -> dict[str, float]:
    """Average the numeric metrics that every result reports, weighted by example counts.

    flwr_declearn's internal keys (`protocol.is_internal_key`) and non-numeric
    values (str, bytes, bool) are ignored.
    """
    results = [(count, metrics) for count, metrics in results if count > 0]
    if not results:
        return {}

    def numeric(value: object) -> bool:
        return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)

    keys = [
        key
        for key, value in results[0][1].items()
        if not is_internal_key(key)
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
