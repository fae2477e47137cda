"""Split a dataset across federated clients, IID or label-skewed (non-IID).

Schemes
-------
- "iid": a uniformly random split into near-equal parts.
- "labels": the "pathological" non-IID split of McMahan et al. (2017):
  samples sorted by label are cut into `n_partitions * labels_per_partition`
  near-equal shards and each partition receives `labels_per_partition` random
  shards, hence mostly that many distinct labels.
- "dirichlet": the split of Hsu et al. (2019): for each label, the shares of
  its samples going to each partition are drawn from Dirichlet(alpha, ..., alpha);
  small `alpha` gives strongly skewed label distributions (and sizes).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, Unpack

import numpy as np

from flwr_declearn.data._dataset import InMemoryDataset

__all__ = ["PartitionScheme", "partition_dataset", "partition_indices"]

PartitionScheme = Literal["iid", "labels", "dirichlet"]

_MAX_DIRICHLET_DRAWS = 1000


def partition_indices(
    labels: Any,
    n_partitions: int,
    scheme: PartitionScheme = "dirichlet",
    *,
    alpha: float = 0.5,
    labels_per_partition: int = 2,
    min_size: int = 1,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Split sample indices into disjoint partitions that cover every sample.

    Parameters
    ----------
    labels:
        1-d array of the samples' labels (only its length matters for "iid").
    n_partitions:
        Number of partitions (clients).
    scheme:
        "iid", "labels" or "dirichlet" (see the module docstring).
    alpha:
        Concentration of the "dirichlet" scheme (> 0; smaller is more skewed).
    labels_per_partition:
        Number of label-sorted shards per partition in the "labels" scheme.
    min_size:
        Minimum number of samples per partition; the "dirichlet" scheme redraws
        until it holds (a ValueError is raised if it keeps failing).
    seed:
        Seed of the random generator: the same seed gives the same split.

    Returns
    -------
    list of numpy arrays
        One sorted int64 array of sample indices per partition.

    Raises
    ------
    ValueError
        If an argument is invalid, or if the split cannot give every
        partition `min_size` samples.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"'labels' must be a 1-d array, not of shape {labels.shape}.")
    n_samples = len(labels)
    _check_int("n_partitions", n_partitions, minimum=1)
    _check_int("min_size", min_size, minimum=0)
    if n_partitions * min_size > n_samples:
        raise ValueError(
            f"Cannot split {n_samples} samples into {n_partitions} partitions of at least "
            f"{min_size} sample(s)."
        )
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n_samples), n_partitions)
    elif scheme == "labels":
        _check_int("labels_per_partition", labels_per_partition, minimum=1)
        parts = _split_by_label_shards(labels, n_partitions, labels_per_partition, rng)
    elif scheme == "dirichlet":
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ValueError(f"'alpha' must be a positive float, not {alpha!r}.")
        parts = _split_dirichlet(labels, n_partitions, float(alpha), min_size, rng)
    else:
        raise ValueError(
            f"Unknown partition scheme {scheme!r}; expected 'iid', 'labels' or 'dirichlet'."
        )
    small = [i for i, part in enumerate(parts) if len(part) < min_size]
    if small:
        raise ValueError(
            f"Partitions {small} hold fewer than min_size={min_size} samples; "
            "use fewer partitions or shards, or a smaller 'min_size'."
        )
    return [np.sort(part).astype(np.int64) for part in parts]


class PartitionOptions(TypedDict, total=False):
    """Keyword options of `partition_indices` (see there), that `partition_dataset` passes on."""

    alpha: float
    labels_per_partition: int
    min_size: int
    seed: int | None


def partition_dataset(
    dataset: InMemoryDataset,
    n_partitions: int,
    scheme: PartitionScheme = "dirichlet",
    **options: Unpack[PartitionOptions],
) -> list[InMemoryDataset]:
    """Split an InMemoryDataset by `partition_indices` of its targets.

    Partition `i` gets the batching seed `dataset.seed + i` (None if the
    dataset has no seed). Arguments are those of `partition_indices`.

    Raises
    ------
    ValueError
        If the scheme is label-based and the dataset has no targets, or as
        `partition_indices`.
    """
    if dataset.target is None:
        if scheme != "iid":
            raise ValueError(f"The {scheme!r} partition scheme needs a dataset with targets.")
        labels = np.zeros(len(dataset), dtype=np.int64)
    else:
        labels = np.asarray(dataset._y)
    parts = partition_indices(labels, n_partitions, scheme, **options)
    return [
        InMemoryDataset(
            *dataset.take(idx),
            expose_classes=dataset.expose_classes,
            expose_data_type=dataset.expose_data_type,
            seed=None if dataset.seed is None else dataset.seed + i,
        )
        for i, idx in enumerate(parts)
    ]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"'{name}' must be an int >= {minimum}, not {value!r}.")


def _split_by_label_shards(
    labels: np.ndarray, n_partitions: int, per_partition: int, rng: np.random.Generator
) -> list[np.ndarray]:
    n_shards = n_partitions * per_partition
    if n_shards > len(labels):
        raise ValueError(
            f"Cannot cut {len(labels)} samples into {n_shards} label shards "
            f"({n_partitions} partitions x {per_partition})."
        )
    # Shuffle first so that ties (same label) are ordered randomly, then sort stably.
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    shards = np.array_split(order, n_shards)
    owners = rng.permutation(n_shards).reshape(n_partitions, per_partition)
    return [np.concatenate([shards[s] for s in row]) for row in owners]


def _split_dirichlet(
    labels: np.ndarray,
    n_partitions: int,
    alpha: float,
    min_size: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    by_label = [rng.permutation(np.flatnonzero(labels == lab)) for lab in np.unique(labels)]
    for _ in range(_MAX_DIRICHLET_DRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_partitions)]
        for idx in by_label:
            shares = rng.dirichlet(np.full(n_partitions, alpha))
            cuts = np.round(np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
                part.append(chunk)
        merged = [np.concatenate(chunks) for chunks in parts]
        if min(len(part) for part in merged) >= min_size:
            return merged
    raise ValueError(
        f"No Dirichlet(alpha={alpha}) split over {n_partitions} partitions gave every partition "
        f"min_size={min_size} samples in {_MAX_DIRICHLET_DRAWS} draws; raise 'alpha' or lower "
        "'min_size'."
    )
