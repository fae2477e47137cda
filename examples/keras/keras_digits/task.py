"""The task: a Keras MLP on scikit-learn's digits, split among clients by flwr-datasets.

The data are `flwr_declearn.data.examples`' (a `datasets.Dataset` of the 8x8 images, IID or
Dirichlet partitions); the model is a Keras 3 `Sequential` (tensorflow backend) wrapped in a
`TensorflowModel`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import datasets
import keras
import tensorflow as tf

from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.tensorflow import TensorflowModel

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
