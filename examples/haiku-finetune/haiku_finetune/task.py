"""The task: a haiku MLP pretrained on digits 0-4, then fine-tuned (head only) on all digits.

The data are the quickstart's (scikit-learn's digits as a `datasets.Dataset`, split by
flwr-datasets partitioners). The server pretrains the whole MLP on its own public data,
the training images of digits 0 to 4; the federation then trains only the output layer
on the clients' images of all ten digits, the hidden layers frozen by
`HaikuModel.set_trainable_weights`.
"""

from __future__ import annotations

import functools

import datasets
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner
from sklearn.datasets import load_digits

from flwr_declearn.data import InMemoryDataset, as_dataset
from flwr_declearn.model.haiku import HaikuModel
from flwr_declearn.optimizer import Optimizer

N_FEATURES = 64
N_CLASSES = 10
HEAD = ["head:b", "head:w"]
"""The weights that the federation trains; the others stay as pretrained."""

datasets.disable_progress_bars()


def mlp(inputs: jax.Array) -> jax.Array:
    """64-64-64-10 MLP: two ReLU hidden layers ("body_0", "body_1") and the "head"."""
    hidden = jax.nn.relu(hk.Linear(64, name="body_0")(inputs))
    hidden = jax.nn.relu(hk.Linear(64, name="body_1")(hidden))
    return hk.Linear(N_CLASSES, name="head")(hidden)


def cross_entropy(y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
    """Sample-wise softmax cross-entropy of logits and integer labels."""
    log_probs = jax.nn.log_softmax(y_pred)
    return -jnp.take_along_axis(log_probs, y_true[:, None].astype(jnp.int32), axis=1)[:, 0]


def build_model(seed: int = 0, frozen_body: bool = True) -> HaikuModel:
    """Return the MLP with seeded initial weights; only `HEAD` trains if `frozen_body`."""
    model = HaikuModel(mlp, loss=cross_entropy, seed=seed)
    model.initialize({"features_shape": (N_FEATURES,), "data_type": "float32"})
    if frozen_body:
        model.set_trainable_weights(HEAD)
    return model


def pretrain(model: HaikuModel, data: InMemoryDataset, epochs: int, lrate: float) -> None:
    """Train all the weights of `model` on `data` with plain SGD (batches of 32)."""
    model.set_trainable_weights(model.get_weight_names())
    optimizer = Optimizer(lrate=lrate)
    for _ in range(epochs):
        for batch in data.generate_batches(32, shuffle=True):
            optimizer.run_train_step(model, batch)
    model.set_trainable_weights(HEAD)


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


def load_public_data(seed: int = 0) -> InMemoryDataset:
    """Return the server's pretraining data: the training images of digits 0 to 4."""
    train = load_digits_splits(seed)["train"]
    return as_dataset(train.filter(lambda row: row["label"] < 5), seed=seed)
