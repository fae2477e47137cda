"""Canonical weight names: torch, Keras, haiku and JAX models of one architecture agree.

With `canonical_names=True`, the four frameworks' models of one MLP (and of
conv / embedding / norm layers) expose identically named, shaped and typed
weights, and, given the same weights, make the same predictions and gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("haiku")

import haiku as hk
import jax
import keras
import optax
import torch

from flwr_declearn.model.api import Model
from flwr_declearn.model.haiku import HaikuModel
from flwr_declearn.model.jax import JaxModel
from flwr_declearn.model.tensorflow import TensorflowModel
from flwr_declearn.model.torch import TorchModel

from .cases import haiku_xent, jax_mlp, jax_mlp_params, make_data

N_FEATURES, N_HIDDEN, N_CLASSES = 6, 8, 3
MLP_NAMES = ["dense_0/kernel", "dense_0/bias", "dense_1/kernel", "dense_1/bias"]


def torch_mlp() -> Model:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, N_HIDDEN), torch.nn.Tanh(), torch.nn.Linear(N_HIDDEN, N_CLASSES)
    )
    return TorchModel(net, torch.nn.CrossEntropyLoss(), canonical_names=True)


def keras_mlp() -> Model:
    net = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(N_HIDDEN, activation="tanh"),
            keras.layers.Dense(N_CLASSES),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return TensorflowModel(net, loss, canonical_names=True)


def haiku_mlp_fn(inputs: Any) -> Any:
    return hk.nets.MLP([N_HIDDEN, N_CLASSES], activation=jax.nn.tanh)(inputs)


def haiku_mlp() -> Model:
    model = HaikuModel(haiku_mlp_fn, haiku_xent, seed=0, canonical_names=True)
    model.initialize({"features_shape": [N_FEATURES], "data_type": "float32"})
    return model


def jax_mlp_model() -> Model:
    params = jax_mlp_params(N_FEATURES, N_HIDDEN, N_CLASSES, "float32", seed=0)
    return JaxModel(jax_mlp, params, haiku_xent, canonical_names=True)


MLPS: dict[str, Callable[[], Model]] = {
    "torch": torch_mlp,
    "keras": keras_mlp,
    "haiku": haiku_mlp,
    "jax": jax_mlp_model,
}


def specs(model: Model, trainable: bool = False) -> dict[str, tuple[tuple[int, ...], str]]:
    weights = model.get_weights(trainable)
    shapes, dtypes = weights.shapes(), weights.dtypes()
    return {name: (shapes[name], dtypes[name]) for name in weights.coefs}


def test_the_four_frameworks_mlps_have_identical_canonical_specs() -> None:
    expected = {
        "dense_0/kernel": ((N_FEATURES, N_HIDDEN), "float32"),
        "dense_0/bias": ((N_HIDDEN,), "float32"),
        "dense_1/kernel": ((N_HIDDEN, N_CLASSES), "float32"),
        "dense_1/bias": ((N_CLASSES,), "float32"),
    }
    for name, build in MLPS.items():
        model = build()
        assert list(model.get_weights().coefs) == MLP_NAMES, name
        assert specs(model) == expected, name
        assert specs(model, trainable=True) == expected, name


def test_same_weights_give_the_same_predictions_and_gradients_everywhere() -> None:
    models = {name: build() for name, build in MLPS.items()}
    shared = models["torch"].get_weights().pack()  # torch's (out, in) kernels, transposed
    x, y = make_data(n_samples=10)
    preds, grads = {}, {}
    for name, model in models.items():
        model.set_weights(type(model.get_weights()).unpack(shared))
        preds[name] = model.compute_batch_predictions((x, y, None))[1]
        grads[name] = model.compute_batch_gradients((x, y, None)).pack()
    for name in models:
        np.testing.assert_allclose(preds[name], preds["torch"], rtol=1e-5, atol=1e-6)
        for key, value in grads["torch"].items():
            np.testing.assert_allclose(grads[name][key], value, rtol=1e-4, atol=1e-6)


def test_canonical_torch_updates_reach_the_transposed_kernels() -> None:
    model = torch_mlp()
    module = model.get_wrapped_model().module
    before = module[0].weight.detach().clone()
    updates = {k: np.zeros(v.shape, "float32") for k, v in model.get_weights().pack().items()}
    updates["dense_0/kernel"][2, 5] = 1.0  # input 2 -> hidden unit 5
    model.apply_updates(type(model.get_weights()).unpack(updates), scale=0.5)
    delta = (module[0].weight.detach() - before).numpy()
    assert delta[5, 2] == pytest.approx(0.5) and np.count_nonzero(delta) == 1


# -- conv, embedding and norm layers -----------------------------------------------------------


def torch_convnet() -> Model:
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, kernel_size=3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.LayerNorm(4),
        torch.nn.Linear(4, 3),
    )
    return TorchModel(net, torch.nn.CrossEntropyLoss(), canonical_names=True)


def keras_convnet() -> Model:
    net = keras.Sequential(
        [
            keras.Input((5, 5, 2)),
            keras.layers.Conv2D(4, 3),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(3),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return TensorflowModel(net, loss, canonical_names=True)


def test_conv_and_norm_layers_share_names_and_channels_last_layouts() -> None:
    torch_specs = {k: v[0] for k, v in specs(torch_convnet()).items()}
    keras_specs = {k: v[0] for k, v in specs(keras_convnet()).items()}
    assert torch_specs == keras_specs
    assert torch_specs["conv_0/kernel"] == (3, 3, 2, 4)
    assert {"norm_1/scale", "norm_1/offset", "norm_1/mean", "norm_1/var"} <= set(torch_specs)
    assert {"norm_2/scale", "norm_2/offset", "dense_3/kernel"} <= set(torch_specs)


def haiku_embed_fn(tokens: Any) -> Any:
    embedded = hk.Embed(vocab_size=10, embed_dim=4)(tokens).mean(axis=1)
    normed = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True)(embedded)
    return hk.Linear(3)(normed)


def test_embedding_layers_share_names_across_torch_keras_and_haiku() -> None:
    class TorchEmbed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.out = torch.nn.Linear(4, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.out(self.norm(self.embed(tokens).mean(dim=1)))

    keras_net = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(10, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(3),
        ]
    )
    loss = optax.softmax_cross_entropy_with_integer_labels
    haiku = HaikuModel(haiku_embed_fn, loss, seed=0, canonical_names=True)
    haiku.initialize({"features_shape": [5], "data_type": "int32"})
    models = [
        TorchModel(TorchEmbed(), torch.nn.CrossEntropyLoss(), canonical_names=True),
        TensorflowModel(keras_net, "sparse_categorical_crossentropy", canonical_names=True),
        haiku,
    ]
    expected = {
        "embedding_0/embeddings": (10, 4),
        "norm_1/scale": (4,),
        "norm_1/offset": (4,),
        "dense_2/kernel": (4, 3),
        "dense_2/bias": (3,),
    }
    for model in models:
        assert {k: v[0] for k, v in specs(model).items()} == expected, type(model).__name__
