"""The task: a haiku MLP pretrained on digits 0-4, then fine-tuned (head only) on all digits.

The data are `flwr_declearn.data.examples`' (scikit-learn's digits as a `datasets.Dataset`, split by
flwr-datasets partitioners). The server pretrains the whole MLP on its own public data,
the training images of digits 0 to 4; the federation then trains only the output layer
on the clients' images of all ten digits, the hidden layers frozen by
`HaikuModel.set_trainable_weights`.
"""

from __future__ import annotations

import datasets
import haiku as hk
import jax
import jax.numpy as jnp

from flwr_declearn.data import InMemoryDataset, as_dataset
from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.data.examples import digits_splits as load_digits_splits
from flwr_declearn.model.haiku import HaikuModel
from flwr_declearn.optimizer import Optimizer

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


def load_public_data(seed: int = 0) -> InMemoryDataset:
    """Return the server's pretraining data: the training images of digits 0 to 4."""
    train = load_digits_splits(seed)["train"]
    return as_dataset(train.filter(lambda row: row["label"] < 5), seed=seed)
