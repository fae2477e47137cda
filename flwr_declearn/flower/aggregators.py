"""Robust aggregation of client updates, selectable by name (type registry, group "Aggregator").

An Aggregator turns the clients' updates `d_k = w_global - w_k` (float64,
named arrays, in client-id order) and their example counts `n_k` into the
round's pseudo-gradient, that the server Optimizer then applies:

- "mean" (default): `sum_k n_k d_k / sum_k n_k`, a running float64 sum
  (memory O(model), whatever the number of clients): FedAvg / FedOpt;
  computed from the weights as `w_global - sum_k n_k w_k / sum_k n_k`,
  block by block (`WeightedMean.aggregate_weights`);
- "median": coordinate-wise median of the `d_k`, counts ignored (Flower's
  FedMedian; Yin et al., 2018);
- "trimmed-mean": coordinate-wise mean of the `d_k` after dropping the
  `beta` fraction of smallest and of largest values, counts ignored
  (Flower's FedTrimmedAvg);
- "clipped-mean": `d_k` scaled to an L2 norm of at most `max_norm` (over all
  the trainable arrays of one client), then their mean (unweighted by
  default, count-weighted with `weighted=True`); running sum.

Non-trainable weights (e.g. batch-norm statistics) go through the same
aggregator (as `w_global - agg(d_k)`), except that "clipped-mean" does not
clip them.

Aux-vars are not aggregated here: a server OptiModule combines them (e.g.
SCAFFOLD sums the clients' control-variate deltas). They are checked at the
boundary (specs, finiteness, optional norm bound `max_aux_norm` of the
strategy), which is what bounds a Byzantine client's aux-vars under every
aggregator; a client whose update a robust aggregator outvotes or clips still
contributes its (checked) aux-vars.

Build one from a spec: `Aggregator.from_specs("median", {})`, or pass
`aggregator="median"` / `("trimmed-mean", {"beta": 0.2})` to a strategy.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from flwr_declearn.utils import create_types_registry
from flwr_declearn.utils._plugin import RegisteredPlugin

__all__ = [
    "Aggregator",
    "ClientWeights",
    "ClippedMean",
    "Contribution",
    "Median",
    "TrimmedMean",
    "WeightedMean",
    "build_aggregator",
]


Weights = Mapping[str, np.ndarray]
"""Arrays by name."""
Names = Sequence[str]
"""Names of arrays, in order."""


class ClientWeights(NamedTuple):
    """One client's checked weights by name (any dtype) and its example count."""

    client_id: str
    num_examples: float
    weights: Weights


class Contribution(NamedTuple):
    """One client's contribution: its id, example count and float64 updates by name."""

    client_id: str
    num_examples: float
    deltas: dict[str, np.ndarray]


@create_types_registry(name="Aggregator")
class Aggregator(RegisteredPlugin, metaclass=ABCMeta, register=False):
    """Combine the clients' updates `w_global - w_k` into a pseudo-gradient."""

    plugin_group: ClassVar[str] = "Aggregator"

    @abstractmethod
    def aggregate(
        self, contributions: Iterable[Contribution], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        """Return the float64 aggregate of `names`.

        Parameters
        ----------
        contributions:
            The clients' contributions in client-id order; possibly a lazy
            iterable, consumed once.
        names:
            Names of the arrays to aggregate.
        clip:
            Names of the arrays a norm-bounding aggregator may scale (the
            trainable ones).
        """

    def aggregate_weights(
        self, global_weights: Weights, clients: Sequence[ClientWeights], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        """Return the float64 aggregate of the clients' updates `w_global - w_k` of `names`.

        The default turns each client's weights into float64 updates, one
        client at a time, and calls `aggregate`; an Aggregator may compute
        the same quantity more directly from the weights.
        """
        contributions = (
            Contribution(
                client.client_id,
                client.num_examples,
                {
                    name: np.subtract(global_weights[name], client.weights[name], dtype=np.float64)
                    for name in names
                },
            )
            for client in clients
        )
        return self.aggregate(contributions, names, clip)


class WeightedMean(Aggregator):
    """`sum_k n_k d_k / sum_k n_k`, as a running float64 sum (FedAvg)."""

    name: ClassVar[str] = "mean"

    def aggregate(
        self, contributions: Iterable[Contribution], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        return _running_mean(contributions, names, lambda contrib: 1.0)

    def aggregate_weights(
        self, global_weights: Weights, clients: Sequence[ClientWeights], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        """`w_global - sum_k n_k w_k / sum_k n_k`, the sum in float64 in client order.

        Equal to the mean of the updates up to float64 rounding. The sum runs
        block of coordinates by block: a block of the float64 accumulator
        stays in cache while every client's `n_k w_k` is added to it in
        client order, so that each reply is read once and nothing is
        allocated per reply (the result is the same as client by client).
        """
        if not clients:
            raise ValueError("Nothing to aggregate: no client contribution.")
        total = float(sum(client.num_examples for client in clients))
        if not total > 0:
            raise ValueError("Nothing to aggregate: no client contribution.")
        factors = [float(client.num_examples) for client in clients]
        scratch = np.empty(_BLOCK, dtype=np.float64)
        out: dict[str, np.ndarray] = {}
        for name in names:
            acc = np.zeros(np.shape(global_weights[name]), dtype=np.float64)
            flat = acc.reshape(-1)
            arrays = [np.asanyarray(client.weights[name]) for client in clients]
            if not all(array.flags.c_contiguous for array in arrays):
                # Rare (e.g. Fortran-ordered .npy): client by client, same operations and order.
                for array, factor in zip(arrays, factors, strict=True):
                    np.add(acc, np.multiply(array, factor, dtype=np.float64), out=acc)
                arrays = []
            arrays = [array.reshape(-1) for array in arrays]  # views (C order)
            for start in range(0, flat.size if arrays else 0, _BLOCK):
                stop = min(start + _BLOCK, flat.size)
                target, buffer = flat[start:stop], scratch[: stop - start]
                for values, factor in zip(arrays, factors, strict=True):
                    np.copyto(buffer, values[start:stop])  # exact cast to float64
                    np.multiply(buffer, factor, out=buffer)
                    np.add(target, buffer, out=target)
            acc /= -total
            acc += global_weights[name]
            out[name] = acc
        return out


class ClippedMean(Aggregator):
    """Each client's update scaled to an L2 norm of at most `max_norm`, then averaged.

    Parameters
    ----------
    max_norm:
        Bound on the L2 norm of a client's update (over the `clip` arrays).
    weighted:
        Whether to weight clients by their example counts (as FedAvg does);
        by default every client weighs the same, so that an inflated count
        cannot buy a clipped update more influence.
    """

    name: ClassVar[str] = "clipped-mean"

    def __init__(self, max_norm: float, weighted: bool = False) -> None:
        if (
            isinstance(max_norm, bool)
            or not isinstance(max_norm, int | float)
            or not (0 < max_norm < math.inf)
        ):
            raise ValueError(f"'max_norm' must be a positive finite float, not {max_norm!r}.")
        if not isinstance(weighted, bool):
            raise ValueError(f"'weighted' must be a bool, not {weighted!r}.")
        self.max_norm = float(max_norm)
        self.weighted = weighted

    def get_config(self) -> dict[str, Any]:
        return {"max_norm": self.max_norm, "weighted": self.weighted}

    def aggregate(
        self, contributions: Iterable[Contribution], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        def factor(contrib: Contribution) -> float:
            norm = update_norm(contrib.deltas, clip)
            return 1.0 if norm <= self.max_norm else self.max_norm / norm

        if not self.weighted:
            contributions = (c._replace(num_examples=1) for c in contributions)
        return _running_mean(contributions, names, factor, clip)


class Median(Aggregator):
    """Coordinate-wise median of the clients' updates (counts ignored)."""

    name: ClassVar[str] = "median"

    def aggregate(
        self, contributions: Iterable[Contribution], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        items = _non_empty(contributions)
        return {
            name: np.median(np.stack([c.deltas[name] for c in items]), axis=0) for name in names
        }


class TrimmedMean(Aggregator):
    """Coordinate-wise mean after dropping the `beta` fraction of lowest and highest values.

    Parameters
    ----------
    beta:
        Fraction in [0, 0.5) trimmed at each end (rounded down to a count of
        clients, so that few clients may trim none).
    """

    name: ClassVar[str] = "trimmed-mean"

    def __init__(self, beta: float = 0.1) -> None:
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 <= beta < 0.5:
            raise ValueError(f"'beta' must lie in [0, 0.5), not {beta!r}.")
        self.beta = float(beta)

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def aggregate(
        self, contributions: Iterable[Contribution], names: Names, clip: Names
    ) -> dict[str, np.ndarray]:
        items = _non_empty(contributions)
        cut = int(self.beta * len(items))
        out = {}
        for name in names:
            stacked = np.sort(np.stack([c.deltas[name] for c in items]), axis=0)
            out[name] = stacked[cut : len(items) - cut].mean(axis=0)
        return out


def update_norm(deltas: dict[str, np.ndarray], names: Iterable[str]) -> float:
    """Return the L2 norm of the named float64 arrays taken together."""
    return math.sqrt(sum(float(np.vdot(deltas[name], deltas[name])) for name in names))


_BLOCK = 1 << 15
"""Coordinates per block of the weighted sum (256 KiB of float64: stays in cache)."""


def _non_empty(contributions: Iterable[Contribution]) -> list[Contribution]:
    items = list(contributions)
    if not items:
        raise ValueError("Nothing to aggregate: no client contribution.")
    return items


def _running_mean(
    contributions: Iterable[Contribution],
    names: Sequence[str],
    factor: Any,
    clip: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """`sum_k n_k s_k d_k / sum_k n_k` with `s_k = factor(k)` on the `clip` arrays, 1 elsewhere."""
    acc: dict[str, np.ndarray] | None = None
    total = 0.0
    clipped = set(clip)
    for contrib in contributions:
        scale = factor(contrib)
        total += contrib.num_examples
        if acc is None:
            acc = {name: np.zeros_like(contrib.deltas[name]) for name in names}
        for name in names:
            weight = contrib.num_examples * scale if name in clipped else contrib.num_examples
            acc[name] += weight * contrib.deltas[name]
    if acc is None or total <= 0:
        raise ValueError("Nothing to aggregate: no client contribution.")
    for value in acc.values():
        value /= total
    return acc


def build_aggregator(spec: Aggregator | str | Sequence[Any] | None) -> Aggregator:
    """Build an Aggregator from an instance, a name, or a `(name, config)` pair (None: "mean").

    Raises
    ------
    KeyError
        If no Aggregator is registered under the name.
    TypeError
        If the spec or its config is invalid.
    """
    if spec is None:
        return WeightedMean()
    if isinstance(spec, Aggregator):
        return spec
    if isinstance(spec, str):
        return Aggregator.from_specs(spec, {})
    if (
        isinstance(spec, Sequence)
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    ):
        return Aggregator.from_specs(spec[0], dict(spec[1]))
    raise TypeError(
        f"`aggregator` must be an Aggregator, a name or a (name, config) pair, not {spec!r}."
    )
