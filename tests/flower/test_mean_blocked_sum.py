"""The weighted mean's blocked sum over client weights equals the generic update-by-update path."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_declearn.flower import aggregators
from flwr_declearn.flower.aggregators import Aggregator, ClientWeights, WeightedMean


def _clients(rng: np.random.Generator, glob: dict[str, np.ndarray]) -> list[ClientWeights]:
    clients = []
    for k in range(7):
        weights = {
            name: (value + rng.normal(0, 1.0, value.shape)).astype(value.dtype)
            for name, value in glob.items()
        }
        weights["fortran"] = np.asfortranarray(weights["fortran"])
        clients.append(ClientWeights(str(k), int(rng.integers(1, 1000)), weights))
    return clients


def test_blocked_weighted_mean_equals_mean_of_float64_updates() -> None:
    rng = np.random.default_rng(3)
    size = 2 * aggregators._BLOCK + 17  # several blocks, a partial last one
    glob = {
        "big": rng.normal(size=size).astype(np.float32),
        "fortran": rng.normal(size=(37, 41)).astype(np.float32),
        "double": rng.normal(size=(5, 3)),
        "scalar": np.array(0.5, dtype=np.float32),
    }
    clients = _clients(rng, glob)
    names = sorted(glob)
    fast = WeightedMean().aggregate_weights(glob, clients, names, names)
    generic = Aggregator.aggregate_weights(WeightedMean(), glob, clients, names, names)
    for name in names:
        assert fast[name].dtype == np.float64 and fast[name].shape == glob[name].shape
        np.testing.assert_allclose(fast[name], generic[name], rtol=1e-12, atol=1e-12)


def test_blocked_weighted_mean_is_bit_identical_across_calls() -> None:
    rng = np.random.default_rng(4)
    glob = {"big": rng.normal(size=aggregators._BLOCK + 5).astype(np.float32)}
    glob["fortran"] = rng.normal(size=(4, 6)).astype(np.float32)
    clients = _clients(rng, glob)
    first = WeightedMean().aggregate_weights(glob, clients, sorted(glob), ())
    second = WeightedMean().aggregate_weights(glob, clients, sorted(glob), ())
    for name in glob:
        assert first[name].tobytes() == second[name].tobytes()


def test_blocked_weighted_mean_rejects_no_client() -> None:
    with pytest.raises(ValueError, match="Nothing to aggregate"):
        WeightedMean().aggregate_weights({"w": np.zeros(3)}, [], ["w"], ["w"])


def test_fortran_ordered_replies_sum_bit_identically_to_c_ordered_ones() -> None:
    rng = np.random.default_rng(5)
    glob = {"fortran": rng.normal(size=(300, 250)).astype(np.float32)}
    f_clients = _clients(rng, glob)
    c_clients = [
        c._replace(weights={"fortran": np.ascontiguousarray(c.weights["fortran"])})
        for c in f_clients
    ]
    assert not f_clients[0].weights["fortran"].flags.c_contiguous
    f_mean = WeightedMean().aggregate_weights(glob, f_clients, ["fortran"], ())
    c_mean = WeightedMean().aggregate_weights(glob, c_clients, ["fortran"], ())
    assert f_mean["fortran"].tobytes() == c_mean["fortran"].tobytes()
