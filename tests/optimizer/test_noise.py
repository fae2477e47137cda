"""gaussian-noise: seeded draws equal declearn's; safe mode samples N(0, std^2) via a CSPRNG."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer.modules import (
    GaussianNoiseModule,
    secure_standard_normal,
    secure_uniform,
)

from ._helpers import ours, vector_types


def test_secure_uniform_lies_in_half_open_unit_interval_and_is_uniform() -> None:
    values = secure_uniform(200_000)
    assert values.dtype == np.float64
    assert values.min() > 0.0 and values.max() <= 1.0
    counts, _ = np.histogram(values, bins=10, range=(0.0, 1.0))
    # chi-square with 9 dof: 99.99% quantile is about 33.7
    chi2 = ((counts - 20_000) ** 2 / 20_000).sum()
    assert chi2 < 33.7


def test_secure_standard_normal_has_normal_moments_and_tails() -> None:
    values = secure_standard_normal(400_001)
    assert values.shape == (400_001,)
    assert abs(values.mean()) < 0.01
    assert abs(values.std() - 1.0) < 0.01
    assert abs((np.abs(values) > 1.959964).mean() - 0.05) < 0.003
    assert abs(((values - values.mean()) ** 3).mean()) < 0.03


def test_safe_mode_draws_differ_even_with_a_seed() -> None:
    zeros = NumpyVector({"w": np.zeros(64)})
    first = GaussianNoiseModule(std=1.0, safe_mode=True, seed=0).run(zeros)
    second = GaussianNoiseModule(std=1.0, safe_mode=True, seed=0).run(zeros)
    assert not np.array_equal(first.coefs["w"], second.coefs["w"])


@vector_types
def test_safe_mode_noise_has_requested_std_and_dtype(vtype: type[Vector]) -> None:
    module = GaussianNoiseModule(std=0.25)
    assert module.safe_mode
    grads = ours(vtype, {"a": np.full((300, 100), 3.0, np.float32), "b": np.zeros((), np.float32)})
    out = module.run(grads)
    assert out.dtypes() == {"a": "float32", "b": "float32"}
    noise = out.pack()["a"] - 3.0
    assert abs(noise.mean()) < 0.005
    assert abs(noise.std() - 0.25) < 0.005


@vector_types
def test_seeded_noise_equals_declearn_and_is_reproducible(vtype: type[Vector]) -> None:
    from declearn.optimizer.modules import GaussianNoiseModule as DeclearnNoise

    from ._helpers import assert_close, declearn_vector

    arrays = {"k": np.ones((5, 3)), "s": np.zeros(())}
    ours_a = GaussianNoiseModule(std=0.3, safe_mode=False, seed=123)
    ours_b = GaussianNoiseModule(std=0.3, safe_mode=False, seed=123)
    oracle = DeclearnNoise(std=0.3, safe_mode=False, seed=123)
    for _ in range(3):
        out = ours_a.run(ours(vtype, arrays))
        assert_close(out, oracle.run(declearn_vector(arrays)), rtol=1e-12)
        assert_close(out, ours_b.run(ours(vtype, arrays)), rtol=0.0)


def test_seeded_generator_position_survives_state_round_trip() -> None:
    from flwr_declearn.utils import json_dumps, json_loads

    zeros = NumpyVector({"w": np.zeros(10)})
    module = GaussianNoiseModule(safe_mode=False, seed=1)
    module.run(zeros)
    clone = GaussianNoiseModule(safe_mode=False, seed=1)
    clone.set_state(json_loads(json_dumps(module.get_state())))
    assert np.array_equal(clone.run(zeros).coefs["w"], module.run(zeros).coefs["w"])


def test_noise_rejects_integer_gradients() -> None:
    with pytest.raises(TypeError, match="'w'"):
        GaussianNoiseModule().run(NumpyVector({"w": np.zeros(3, dtype=np.int64)}))
