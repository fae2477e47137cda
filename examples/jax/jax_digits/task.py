"""The task: a plain-JAX MLP on scikit-learn's digits, split among clients by flwr-datasets.

The data are `flwr_declearn.data.examples`' (a `datasets.Dataset` of the 8x8 images, IID or
Dirichlet partitions). The model is plain JAX, no haiku or flax: an `apply(params, x)` function
and a params pytree, wrapped in a `JaxModel`.
"""

from __future__ import annotations

import datasets
import jax
import jax.numpy as jnp
import numpy as np

from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.jax import JaxModel

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
