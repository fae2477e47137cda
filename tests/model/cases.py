"""One `ModelCase` per Model class: how to build a small MLP classifier with it.

The contract tests in `test_model_contract.py` run over every case; a new
Model class plugs in by adding a case here (and its fixture param in conftest).
The networks use tanh (smooth, for finite differences) and no dropout (so
that sample-wise gradients are deterministic).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from flwr_declearn.model.api import Model, Vector

N_FEATURES = 6
N_HIDDEN = 8
N_CLASSES = 3


@dataclasses.dataclass
class ModelCase:
    """Recipe to build an initialized Model around a tanh MLP.

    Attributes
    ----------
    name:
        Registered name of the Model class.
    build:
        `build(dtype, frozen, n_features, n_hidden, n_classes, seed)` returns an
        initialized Model; `frozen=True` freezes the first layer's weights.
    vector_type:
        The Vector type of that Model.
    pickled_config:
        Whether `get_config` pickles (so that `from_config` needs `allow_pickle`).
    package:
        The framework package of the Model (exports `select_device`).
    """

    name: str
    build: Callable[..., Model]
    vector_type: type[Vector]
    pickled_config: bool
    package: str

    def has_gpu(self) -> bool:
        """Whether the framework sees a GPU (its `select_device(gpu=True)` is not a CPU)."""
        device = importlib.import_module(self.package).select_device(True, None)
        return "cpu" not in str(device).lower()

    def make(
        self,
        dtype: str = "float32",
        frozen: bool = False,
        n_features: int = N_FEATURES,
        n_hidden: int = N_HIDDEN,
        n_classes: int = N_CLASSES,
        seed: int = 0,
    ) -> Model:
        return self.build(dtype, frozen, n_features, n_hidden, n_classes, seed)


# -- torch -------------------------------------------------------------------------------------


def build_torch(
    dtype: str,
    frozen: bool,
    n_features: int,
    n_hidden: int,
    n_classes: int,
    seed: int,
    canonical: bool = False,
) -> Model:
    import torch

    from flwr_declearn.model.torch import TorchModel

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(n_features, n_hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(n_hidden, n_classes),
    ).to(getattr(torch, dtype))
    if frozen:
        net[0].requires_grad_(False)
    return TorchModel(net, torch.nn.CrossEntropyLoss(), canonical_names=canonical)


def torch_case() -> ModelCase:
    from flwr_declearn.model.torch import TorchVector

    return ModelCase(
        "TorchModel",
        build_torch,
        TorchVector,
        pickled_config=True,
        package="flwr_declearn.model.torch",
    )


def torch_canonical_case() -> ModelCase:
    """TorchModel exchanging canonical names and (in, out) kernels: views of transposed weights."""
    from flwr_declearn.model.torch import TorchVector

    return ModelCase(
        "TorchModel",
        functools.partial(build_torch, canonical=True),
        TorchVector,
        pickled_config=True,
        package="flwr_declearn.model.torch",
    )


# -- haiku -------------------------------------------------------------------------------------


def haiku_mlp(inputs: Any, n_hidden: int = N_HIDDEN, n_classes: int = N_CLASSES) -> Any:
    """Tanh MLP; module-level so that HaikuModel configs can pickle it."""
    import haiku as hk
    import jax

    hidden = jax.nn.tanh(hk.Linear(n_hidden, name="hidden")(inputs))
    return hk.Linear(n_classes, name="output")(hidden)


def haiku_xent(y_pred: Any, y_true: Any) -> Any:
    """Sample-wise cross-entropy of integer labels."""
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(y_pred, y_true)


class HaikuMLP:
    """Picklable haiku model function of given layer sizes.

    Equal sizes make equal functions, so that HaikuModels built from two
    instances share jit-compiled code (as with one module-level function).
    """

    def __init__(self, n_hidden: int, n_classes: int) -> None:
        self.n_hidden = n_hidden
        self.n_classes = n_classes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HaikuMLP) and (self.n_hidden, self.n_classes) == (
            other.n_hidden,
            other.n_classes,
        )

    def __hash__(self) -> int:
        return hash((HaikuMLP, self.n_hidden, self.n_classes))

    def __call__(self, inputs: Any) -> Any:
        return haiku_mlp(inputs, self.n_hidden, self.n_classes)


def build_haiku(
    dtype: str, frozen: bool, n_features: int, n_hidden: int, n_classes: int, seed: int
) -> Model:
    from flwr_declearn.model.haiku import HaikuModel

    model = HaikuModel(HaikuMLP(n_hidden, n_classes), haiku_xent, seed=seed)
    model.initialize({"features_shape": [n_features], "data_type": dtype})
    if frozen:
        model.set_trainable_weights(lambda layer, name, value: layer != "hidden")
    return model


def haiku_case() -> ModelCase:
    from flwr_declearn.model.haiku import JaxNumpyVector

    return ModelCase(
        "HaikuModel",
        build_haiku,
        JaxNumpyVector,
        pickled_config=True,
        package="flwr_declearn.model.haiku",
    )


# -- plain jax ---------------------------------------------------------------------------------


def jax_mlp(params: Any, inputs: Any) -> Any:
    """Tanh MLP over a plain params pytree; module-level so that configs can pickle it."""
    import jax

    hidden = jax.nn.tanh(inputs @ params["hidden"]["w"] + params["hidden"]["b"])
    return hidden @ params["output"]["w"] + params["output"]["b"]


def jax_mlp_params(n_features: int, n_hidden: int, n_classes: int, dtype: str, seed: int) -> Any:
    """Glorot-uniform kernels and zero biases, as numpy arrays."""
    rng = np.random.default_rng(seed)

    def dense(n_in: int, n_out: int) -> dict[str, np.ndarray]:
        bound = np.sqrt(6.0 / (n_in + n_out))
        kernel = rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype)
        return {"w": kernel, "b": np.zeros(n_out, dtype=dtype)}

    return {"hidden": dense(n_features, n_hidden), "output": dense(n_hidden, n_classes)}


def build_jax(
    dtype: str, frozen: bool, n_features: int, n_hidden: int, n_classes: int, seed: int
) -> Model:
    from flwr_declearn.model.jax import JaxModel

    params = jax_mlp_params(n_features, n_hidden, n_classes, dtype, seed)
    model = JaxModel(jax_mlp, params, haiku_xent, seed=seed)
    if frozen:
        model.set_trainable_weights(lambda name, value: not name.startswith("hidden/"))
    return model


def jax_case() -> ModelCase:
    from flwr_declearn.model.jax import JaxNumpyVector

    return ModelCase(
        "JaxModel",
        build_jax,
        JaxNumpyVector,
        pickled_config=True,
        package="flwr_declearn.model.haiku",
    )


# -- tensorflow --------------------------------------------------------------------------------


def build_tensorflow(
    dtype: str, frozen: bool, n_features: int, n_hidden: int, n_classes: int, seed: int
) -> Model:
    import keras

    from flwr_declearn.model.tensorflow import TensorflowModel

    keras.utils.set_random_seed(seed)
    net = keras.Sequential(
        [
            keras.Input((n_features,), dtype=dtype),
            keras.layers.Dense(n_hidden, activation="tanh", dtype=dtype),
            keras.layers.Dense(n_classes, dtype=dtype),
        ]
    )
    if frozen:
        net.layers[0].trainable = False
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    return TensorflowModel(net, loss)


def tensorflow_case() -> ModelCase:
    from flwr_declearn.model.tensorflow import TensorflowVector

    return ModelCase(
        "TensorflowModel",
        build_tensorflow,
        TensorflowVector,
        pickled_config=False,
        package="flwr_declearn.model.tensorflow",
    )


# -- data --------------------------------------------------------------------------------------


def make_data(
    n_samples: int = 12, dtype: str = "float32", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random features and integer labels for the MLP cases."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, N_FEATURES)).astype(dtype)
    y = rng.integers(0, N_CLASSES, size=n_samples)
    return x, y
