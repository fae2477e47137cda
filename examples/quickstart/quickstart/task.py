"""The learning task: scikit-learn's digits, a small torch MLP, a non-IID split."""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from flwr_declearn.data import InMemoryDataset, partition_dataset
from flwr_declearn.model.torch import TorchModel

N_FEATURES = 64
N_CLASSES = 10

# A tiny model trains fastest on one thread; several clients share the cores.
torch.set_num_threads(1)


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


@functools.cache
def load_splits(seed: int = 0) -> tuple[InMemoryDataset, InMemoryDataset]:
    """Return the (train, test) digits datasets: 80/20 stratified, pixels scaled to [0, 1]."""
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
    """Return client `partition_id`'s share of the training set (Dirichlet label skew)."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions}).")
    train, _ = load_splits(seed)
    min_size = min(20, len(train) // num_partitions)
    shards = partition_dataset(
        train, num_partitions, "dirichlet", alpha=alpha, min_size=min_size, seed=seed
    )
    return shards[partition_id]
