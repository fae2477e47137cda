"""The examples' data: scikit-learn's digits as a Hugging Face dataset, split by flwr-datasets.

Everything is offline: `load_digits` ships with scikit-learn. The 8x8 images
become a `datasets.Dataset` with a "pixels" column (64 floats in [0, 1]) and a
"label" column, split 80/20 (stratified) into train and test sets; a
flwr-datasets partitioner (IID or Dirichlet label skew) shares the training
set among the clients. Needs the `examples` extra (scikit-learn, datasets,
flwr-datasets); imported by the example apps, not by `flwr_declearn`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from flwr_declearn.data._adapters import as_dataset
from flwr_declearn.data._dataset import InMemoryDataset

__all__ = ["N_CLASSES", "N_FEATURES", "digits_partition", "digits_splits", "digits_test_data"]

N_FEATURES = 64
N_CLASSES = 10


@functools.cache
def digits_splits(seed: int = 0) -> Any:
    """Return the digits as a `datasets.DatasetDict` {"train", "test"}: 80/20, stratified."""
    import datasets
    from datasets import ClassLabel, Dataset, Features, Sequence, Value
    from sklearn.datasets import load_digits

    datasets.disable_progress_bars()
    digits = load_digits()
    features = Features(
        {
            "pixels": Sequence(Value("float32"), length=N_FEATURES),
            "label": ClassLabel(num_classes=N_CLASSES),
        }
    )
    dataset = Dataset.from_dict(
        {"pixels": (digits.data / 16.0).astype(np.float32), "label": digits.target},
        features=features,
    )
    return dataset.train_test_split(test_size=0.2, seed=seed, stratify_by_column="label")


@functools.cache
def _partitioner(num_partitions: int, partitioning: str, alpha: float, seed: int) -> Any:
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    partitioner: Any
    if partitioning == "iid":
        partitioner = IidPartitioner(num_partitions=num_partitions)
    elif partitioning == "dirichlet":
        partitioner = DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=alpha,
            min_partition_size=10,
            self_balancing=True,
            seed=seed,
        )
    else:
        raise ValueError(f"partitioning must be 'iid' or 'dirichlet', not {partitioning!r}.")
    partitioner.dataset = digits_splits(seed)["train"]
    return partitioner


def digits_partition(
    partition_id: int,
    num_partitions: int,
    partitioning: str = "dirichlet",
    alpha: float = 0.5,
    seed: int = 0,
) -> Any:
    """Return client `partition_id`'s share of the training set, as a `datasets.Dataset`.

    Parameters
    ----------
    partition_id, num_partitions:
        The node's partition, as in its `node_config`.
    partitioning:
        "iid" or "dirichlet" (label skew of concentration `alpha`).
    alpha:
        Dirichlet concentration: smaller is more skewed.
    seed:
        Seed of the train/test split and of the partitioner.
    """
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions}).")
    return _partitioner(num_partitions, partitioning, alpha, seed).load_partition(partition_id)


def digits_test_data(seed: int = 0) -> InMemoryDataset:
    """Return the held-out test set (for the server's evaluation of the global model)."""
    return as_dataset(digits_splits(seed)["test"])
