"""The learning task: scikit-learn's digits as a Hugging Face dataset, split by flwr-datasets.

Everything is offline: `load_digits` ships with scikit-learn. The 8x8 images become a
`datasets.Dataset` with a "pixels" column (64 floats in [0, 1]) and a "label" column,
split 80/20 (stratified) into train and test sets; a flwr-datasets partitioner (IID or
Dirichlet label skew) shares the training set among the clients. That data loading is
shared by the examples, in `flwr_declearn.data.examples` (installed with flwr_declearn);
this module holds the model.
"""

from __future__ import annotations

import functools

import datasets
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from flwr_declearn.data import InMemoryDataset, partition_dataset
from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.torch import TorchModel

# A tiny model trains fastest on one thread; several clients share the cores.
torch.set_num_threads(1)
datasets.disable_progress_bars()


def build_model(seed: int = 0, hidden: int = 32) -> TorchModel:
    """Return a 64-hidden-10 MLP (ReLU) with seeded initial weights, with its loss."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, N_CLASSES),
        )
    return TorchModel(module, loss=torch.nn.CrossEntropyLoss(reduction="none"))


# -- for the repository's tests -------------------------------------------------------------------
# tests/flower and tests/model train on this data as InMemoryDatasets, split by flwr_declearn's
# own Dirichlet partitioning; their accuracy figures are pinned to this split.


@functools.cache
def load_splits(seed: int = 0) -> tuple[InMemoryDataset, InMemoryDataset]:
    """Return the (train, test) digits as InMemoryDatasets: 80/20 stratified, pixels in [0, 1]."""
    digits = load_digits()
    inputs = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    return InMemoryDataset(x_train, y_train, seed=seed), InMemoryDataset(x_test, y_test)


@functools.cache
def load_partition(
    partition_id: int, num_partitions: int, alpha: float = 0.5, seed: int = 0
) -> InMemoryDataset:
    """Return shard `partition_id` of `load_splits`' training set (Dirichlet label skew)."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions}).")
    train, _ = load_splits(seed)
    min_size = min(20, len(train) // num_partitions)
    shards = partition_dataset(
        train, num_partitions, "dirichlet", alpha=alpha, min_size=min_size, seed=seed
    )
    return shards[partition_id]
