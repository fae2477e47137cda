"""The task: a Keras MLP on scikit-learn's digits, split among clients by flwr-datasets.

The data are the quickstart's (a `datasets.Dataset` of the 8x8 images, IID or Dirichlet
partitions); the model is a Keras 3 `Sequential` (tensorflow backend) wrapped in a
`TensorflowModel`.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import datasets
import keras
import numpy as np
import tensorflow as tf
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    IidPartitioner,
    Partitioner,
)
from sklearn.datasets import load_digits

from flwr_declearn.data import InMemoryDataset, as_dataset
from flwr_declearn.model.tensorflow import TensorflowModel

N_FEATURES = 64
N_CLASSES = 10

# A tiny model trains fastest on one thread; several clients share the cores.
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
datasets.disable_progress_bars()


def build_model(seed: int = 0, hidden: int = 32) -> TensorflowModel:
    """Return a 64-hidden-10 Keras MLP (ReLU) with seeded initial weights, with its loss."""
    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(N_CLASSES),
        ]
    )
    return TensorflowModel(net, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


@functools.cache
def load_digits_splits(seed: int = 0) -> DatasetDict:
    """Return the digits as a DatasetDict {"train", "test"}: 80/20, stratified by label."""
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
def _partitioner(num_partitions: int, partitioning: str, alpha: float, seed: int) -> Partitioner:
    partitioner: Partitioner
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
    partitioner.dataset = load_digits_splits(seed)["train"]
    return partitioner


def load_client_data(
    partition_id: int,
    num_partitions: int,
    partitioning: str = "dirichlet",
    alpha: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """Return client `partition_id`'s share of the training set, as a `datasets.Dataset`."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions}).")
    return _partitioner(num_partitions, partitioning, alpha, seed).load_partition(partition_id)


def load_test_data(seed: int = 0) -> InMemoryDataset:
    """Return the held-out test set (for the server's evaluation of the global model)."""
    return as_dataset(load_digits_splits(seed)["test"])
