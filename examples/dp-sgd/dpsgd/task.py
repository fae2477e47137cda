"""The learning task: digits as a Hugging Face dataset, IID partitions, a torch MLP."""

from __future__ import annotations

import functools

import datasets
import numpy as np
import torch
from flwr_datasets.partitioner import IidPartitioner
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.model.torch import TorchModel

N_FEATURES = 64
N_CLASSES = 10

torch.set_num_threads(1)  # several clients share the cores


def build_model(seed: int = 0, hidden: int = 32) -> TorchModel:
    """Return a 64-hidden-10 MLP (ReLU, no batch-norm: per-sample gradients need none)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, N_CLASSES),
        )
    return TorchModel(module, loss=torch.nn.CrossEntropyLoss(reduction="none"))


@functools.cache
def load_splits(seed: int = 0) -> tuple[datasets.Dataset, InMemoryDataset]:
    """Return the digits (train as a `datasets.Dataset`, test in memory), pixels in [0, 1]."""
    digits = load_digits()
    inputs = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    train = datasets.Dataset.from_dict({"pixels": x_train, "label": y_train})
    return train, InMemoryDataset(x_test, y_test)


@functools.cache
def load_partition(partition_id: int, num_partitions: int, seed: int = 0) -> datasets.Dataset:
    """Return client `partition_id`'s IID share, as flwr-datasets' partitioner gives it."""
    partitioner = IidPartitioner(num_partitions=num_partitions)
    partitioner.dataset = load_splits(seed)[0]
    return partitioner.load_partition(partition_id)
