"""InMemoryDataset batching and data_info aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_declearn.data import DataSpecs, InMemoryDataset, aggregate_data_info


def make_dataset(n: int = 10, seed: int | None = 0) -> InMemoryDataset:
    data = np.arange(n * 2, dtype="float32").reshape(n, 2)
    return InMemoryDataset(data, target=np.arange(n) % 3, s_wght=np.ones(n), seed=seed)


def test_batches_cover_the_data_in_order_without_shuffle() -> None:
    batches = list(make_dataset().generate_batches(4, drop_remainder=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10) % 3)


def test_drop_remainder_drops_the_short_last_batch() -> None:
    assert [len(b[0]) for b in make_dataset().generate_batches(4)] == [4, 4]


def test_shuffled_batches_are_a_seeded_permutation_keeping_rows_aligned() -> None:
    first = list(make_dataset(seed=1).generate_batches(5, shuffle=True))
    again = list(make_dataset(seed=1).generate_batches(5, shuffle=True))
    inputs = np.concatenate([b[0] for b in first])
    assert sorted(inputs[:, 0].tolist()) == list(range(0, 20, 2))
    np.testing.assert_array_equal(inputs, np.concatenate([b[0] for b in again]))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in first]), (inputs[:, 0] // 2) % 3)


def test_poisson_sampling_includes_each_sample_at_the_expected_rate() -> None:
    dataset = InMemoryDataset(np.zeros((1000, 1)), seed=0)
    sizes = [len(b[0]) for _ in range(20) for b in dataset.generate_batches(100, poisson=True)]
    assert len(sizes) == 200
    assert 95 < np.mean(sizes) < 105
    assert np.std(sizes) > 3  # sizes vary: these are not fixed-size batches


def test_sampling_with_replacement_yields_full_batches() -> None:
    batches = list(make_dataset().generate_batches(4, replacement=True))
    assert len(batches) == 2 and all(len(b[0]) == 4 for b in batches)


def test_invalid_inputs_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'target' has 3 samples while 'data' has 4"):
        InMemoryDataset(np.zeros((4, 2)), target=np.zeros(3))
    with pytest.raises(ValueError, match="positive int"):
        next(make_dataset().generate_batches(0))


def test_data_specs_describe_the_dataset() -> None:
    specs = make_dataset().get_data_specs()
    assert specs == DataSpecs(
        n_samples=10, features_shape=(2,), classes=[0, 1, 2], data_type="float32"
    )
    assert specs.to_data_info() == {
        "n_samples": 10,
        "features_shape": [2],
        "classes": [0, 1, 2],
        "data_type": "float32",
    }


def test_aggregate_data_info_sums_counts_unites_classes_and_checks_shapes() -> None:
    infos = [
        {"n_samples": 10, "classes": [0, 1], "features_shape": [2], "data_type": "float32"},
        {"n_samples": 5, "classes": [1, 2], "features_shape": (2,), "data_type": "float32"},
    ]
    assert aggregate_data_info(infos) == {
        "n_samples": 15,
        "classes": [0, 1, 2],
        "features_shape": [2],
        "data_type": "float32",
    }
    assert aggregate_data_info(infos, {"features_shape"}) == {"features_shape": [2]}


def test_aggregate_data_info_raises_on_missing_or_inconsistent_fields() -> None:
    with pytest.raises(KeyError, match="'classes' \\(in dict #1\\)"):
        aggregate_data_info([{"classes": [0]}, {}], {"classes"})
    with pytest.raises(ValueError, match="'features_shape' differs"):
        aggregate_data_info([{"features_shape": [2]}, {"features_shape": [3]}])
    with pytest.raises(ValueError, match="'n_samples' must be a non-negative int"):
        aggregate_data_info([{"n_samples": -1}])
