"""The task: one MLP (64-32-10) written in torch, Keras, haiku and plain JAX, on digits.

Every model is built with `canonical_names=True`: its weights travel as `"dense_0/kernel"`
(shaped `(in, out)`), `"dense_0/bias"`, `"dense_1/kernel"`... whatever the framework (torch
Linear kernels, stored `(out, in)`, are transposed on the way), so the four train together.
Frameworks are imported only when a model of theirs is built. The data are
`flwr_declearn.data.examples`' digits (a `datasets.Dataset`, split by flwr-datasets).
"""

from __future__ import annotations

import os
from typing import Any

import datasets
import numpy as np

from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.api import Model

HIDDEN = 32
FRAMEWORKS = ("torch", "keras", "haiku", "jax")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
datasets.disable_progress_bars()


def build_model(framework: str, seed: int = 0) -> Model[Any]:
    """Return the MLP in `framework` ("torch", "keras", "haiku" or "jax"), canonically named."""
    if framework == "torch":
        return _torch_model(seed)
    if framework == "keras":
        return _keras_model(seed)
    if framework == "haiku":
        return _haiku_model(seed)
    if framework == "jax":
        return _jax_model(seed)
    raise ValueError(f"framework must be one of {FRAMEWORKS}, not {framework!r}.")


def _torch_model(seed: int) -> Model[Any]:
    import torch

    from flwr_declearn.model.torch import TorchModel

    torch.set_num_threads(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, N_CLASSES),
        )
    loss = torch.nn.CrossEntropyLoss(reduction="none")
    return TorchModel(module, loss=loss, canonical_names=True)


def _keras_model(seed: int) -> Model[Any]:
    import keras

    from flwr_declearn.model.tensorflow import TensorflowModel

    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(N_CLASSES),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return TensorflowModel(net, loss=loss, canonical_names=True)


def _cross_entropy(y_pred: Any, y_true: Any) -> Any:
    import jax
    import jax.numpy as jnp

    log_probs = jax.nn.log_softmax(y_pred)
    return -jnp.take_along_axis(log_probs, y_true[:, None].astype(jnp.int32), axis=1)[:, 0]


def _haiku_mlp(inputs: Any) -> Any:
    import haiku as hk
    import jax

    # Layers are numbered canonically in the order haiku names them: create them in order.
    hidden = jax.nn.relu(hk.Linear(HIDDEN)(inputs))
    return hk.Linear(N_CLASSES)(hidden)


def _haiku_model(seed: int) -> Model[Any]:
    from flwr_declearn.model.haiku import HaikuModel

    model = HaikuModel(_haiku_mlp, loss=_cross_entropy, seed=seed, canonical_names=True)
    model.initialize({"features_shape": (N_FEATURES,), "data_type": "float32"})
    return model


def _jax_apply(params: dict[str, Any], inputs: Any) -> Any:
    import jax

    hidden = jax.nn.relu(inputs @ params["l0"]["w"] + params["l0"]["b"])
    return hidden @ params["l1"]["w"] + params["l1"]["b"]


def _jax_model(seed: int) -> Model[Any]:
    from flwr_declearn.model.jax import JaxModel

    rng = np.random.default_rng(seed)
    params = {
        f"l{i}": {
            "w": rng.uniform(-1, 1, (n_in, n_out)).astype(np.float32) * np.sqrt(3 / n_in),
            "b": np.zeros((n_out,), np.float32),
        }
        for i, (n_in, n_out) in enumerate([(N_FEATURES, HIDDEN), (HIDDEN, N_CLASSES)])
    }
    return JaxModel(_jax_apply, params, loss=_cross_entropy, seed=seed, canonical_names=True)
