"""Tests of `partition_indices` / `partition_dataset` (federated data splits)."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_declearn.data import InMemoryDataset, partition_dataset, partition_indices

LABELS = np.repeat(np.arange(10), 50)  # 500 samples, 10 balanced classes


def _check_disjoint_cover(parts: list[np.ndarray], n_samples: int) -> None:
    merged = np.concatenate(parts)
    assert len(merged) == n_samples
    assert np.array_equal(np.sort(merged), np.arange(n_samples))
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no duplicates


@pytest.mark.parametrize("scheme", ["iid", "labels", "dirichlet"])
def test_partitions_are_disjoint_and_cover_all_samples(scheme: str) -> None:
    parts = partition_indices(LABELS, 7, scheme, seed=0)  # type: ignore[arg-type]
    assert len(parts) == 7
    _check_disjoint_cover(parts, len(LABELS))


@pytest.mark.parametrize("scheme", ["iid", "labels", "dirichlet"])
def test_same_seed_gives_same_split_and_other_seed_differs(scheme: str) -> None:
    first = partition_indices(LABELS, 5, scheme, seed=3)  # type: ignore[arg-type]
    again = partition_indices(LABELS, 5, scheme, seed=3)  # type: ignore[arg-type]
    other = partition_indices(LABELS, 5, scheme, seed=4)  # type: ignore[arg-type]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_iid_split_has_near_equal_sizes() -> None:
    sizes = [len(part) for part in partition_indices(LABELS, 7, "iid", seed=0)]
    assert max(sizes) - min(sizes) <= 1


def test_label_shards_give_each_partition_few_labels() -> None:
    parts = partition_indices(LABELS, 10, "labels", labels_per_partition=2, seed=1)
    # 20 shards of 25 samples over label blocks of 50: each shard holds one label.
    for part in parts:
        assert len(part) == 50
        assert len(np.unique(LABELS[part])) <= 2


def test_small_dirichlet_alpha_skews_labels_more_than_large_alpha() -> None:
    def mean_distinct_dominance(alpha: float) -> float:
        parts = partition_indices(LABELS, 10, "dirichlet", alpha=alpha, seed=2)
        # Share of each partition's most frequent label, averaged over partitions.
        return float(np.mean([np.bincount(LABELS[p]).max() / len(p) for p in parts]))

    assert mean_distinct_dominance(0.1) > 0.5
    assert mean_distinct_dominance(100.0) < 0.25


def test_dirichlet_honours_min_size() -> None:
    parts = partition_indices(LABELS, 10, "dirichlet", alpha=0.1, min_size=20, seed=0)
    assert min(len(part) for part in parts) >= 20


def test_dirichlet_raises_when_min_size_cannot_be_met() -> None:
    with pytest.raises(ValueError, match="min_size"):
        partition_indices(LABELS, 10, "dirichlet", alpha=0.01, min_size=49, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_partitions": 0}, "n_partitions"),
        ({"n_partitions": 2.0}, "n_partitions"),
        ({"n_partitions": 501}, "Cannot split"),
        ({"n_partitions": 2, "scheme": "shards"}, "Unknown partition scheme"),
        ({"n_partitions": 2, "alpha": 0.0}, "alpha"),
        ({"n_partitions": 2, "scheme": "labels", "labels_per_partition": 0}, "labels_per_part"),
        ({"n_partitions": 300, "scheme": "labels", "labels_per_partition": 2}, "label shards"),
        ({"n_partitions": 2, "min_size": -1}, "min_size"),
    ],
)
def test_invalid_arguments_raise_a_named_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        partition_indices(LABELS, **kwargs)


def test_labels_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError, match="1-d"):
        partition_indices(LABELS.reshape(50, 10), 2)


def test_partition_dataset_slices_every_array_and_derives_seeds() -> None:
    data = np.arange(len(LABELS) * 2, dtype=np.float32).reshape(-1, 2)
    s_wght = np.linspace(0.5, 1.5, len(LABELS))
    dataset = InMemoryDataset(data, LABELS, s_wght, seed=10)
    shards = partition_dataset(dataset, 4, "dirichlet", alpha=1.0, seed=5)
    indices = partition_indices(LABELS, 4, "dirichlet", alpha=1.0, seed=5)
    for i, (shard, idx) in enumerate(zip(shards, indices, strict=True)):
        assert shard.target is not None and shard.s_wght is not None
        assert np.array_equal(shard.data, data[idx])
        assert np.array_equal(shard.target, LABELS[idx])
        assert np.array_equal(shard.s_wght, s_wght[idx])
        assert shard.seed == 10 + i


def test_partition_dataset_without_targets_supports_iid_only() -> None:
    dataset = InMemoryDataset(np.zeros((20, 3)))
    shards = partition_dataset(dataset, 4, "iid", seed=0)
    assert [len(s) for s in shards] == [5, 5, 5, 5]
    assert all(s.target is None and s.seed is None for s in shards)
    with pytest.raises(ValueError, match="needs a dataset with targets"):
        partition_dataset(dataset, 4, "dirichlet")
