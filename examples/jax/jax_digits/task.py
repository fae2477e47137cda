"""The task: a plain-JAX MLP on scikit-learn's digits, split among clients by flwr-datasets.

The data are the quickstart's (a `datasets.Dataset` of the 8x8 images, IID or Dirichlet
partitions). The model is plain JAX, no haiku or flax: an `apply(params, x)` function
and a params pytree, wrapped in a `JaxModel`.
"""

from __future__ import annotations

import functools

import datasets
import jax
import jax.numpy as jnp
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner
from sklearn.datasets import load_digits

from flwr_declearn.data import InMemoryDataset, as_dataset
from flwr_declearn.model.jax import JaxModel

N_FEATURES = 64
N_CLASSES = 10

datasets.disable_progress_bars()


def init_params(key: jax.Array, hidden: int = 32) -> dict[str, dict[str, jax.Array]]:
    """Glorot-uniform kernels and zero biases of a 64-hidden-10 MLP."""
    params = {}
    sizes = [(N_FEATURES, hidden), (hidden, N_CLASSES)]
    keys = jax.random.split(key)
    for index, (layer_key, (n_in, n_out)) in enumerate(zip(keys, sizes, strict=True)):
        limit = np.sqrt(6.0 / (n_in + n_out))
        params[f"dense_{index}"] = {
            "kernel": jax.random.uniform(layer_key, (n_in, n_out), jnp.float32, -limit, limit),
            "bias": jnp.zeros((n_out,), jnp.float32),
        }
    return params


def apply(params: dict[str, dict[str, jax.Array]], inputs: jax.Array) -> jax.Array:
    """Logits of the MLP (ReLU hidden layer)."""
    hidden = jax.nn.relu(inputs @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
    return hidden @ params["dense_1"]["kernel"] + params["dense_1"]["bias"]


def cross_entropy(y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
    """Sample-wise softmax cross-entropy of logits and integer labels."""
    log_probs = jax.nn.log_softmax(y_pred)
    return -jnp.take_along_axis(log_probs, y_true[:, None].astype(jnp.int32), axis=1)[:, 0]


def build_model(seed: int = 0) -> JaxModel:
    """Return the MLP with seeded initial weights, with its loss."""
    return JaxModel(apply, init_params(jax.random.PRNGKey(seed)), loss=cross_entropy, seed=seed)


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
