"""Canonical layer numbering: each framework numbers layers in its own weight order.

A mixed federation (`canonical_names=True`) pairs `dense_0`, `dense_1`... across
frameworks. torch numbers modules in registration order (`__init__`), Keras in
`model.weights` order (call order for Sequential / functional models, attribute order
for subclassed ones), haiku in the order parameters are created by `init` (call order)
and plain JAX in the params pytree's order (dict keys sorted). Declared in call order,
one MLP gets the same names and shapes in all four; declared otherwise, the first
round's spec check names the client and the differing weights.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from flwr.app import Message, MetricRecord, RecordDict

from flwr_declearn.flower import DeclearnMessageStrategy, SpecMismatchError
from flwr_declearn.flower._records import arrays_to_record
from flwr_declearn.optimizer import Optimizer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
hk = pytest.importorskip("haiku")
jax = pytest.importorskip("jax")

DATA_INFO = {"features_shape": (64,), "data_type": "float32"}


def _specs(model: Any) -> dict[str, tuple[int, ...]]:
    return {name: tuple(np.shape(value)) for name, value in model.get_weights().coefs.items()}


def _loss(y_pred: Any, y_true: Any) -> Any:
    return jax.numpy.mean((y_pred - y_true) ** 2, axis=-1)


def _torch(call_order: bool) -> Any:
    from flwr_declearn.model.torch import TorchModel

    class Net(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            if call_order:
                self.hidden = torch.nn.Linear(64, 32)
                self.out = torch.nn.Linear(32, 10)
            else:
                self.out = torch.nn.Linear(32, 10)
                self.hidden = torch.nn.Linear(64, 32)

        def forward(self, x: Any) -> Any:
            return self.out(torch.relu(self.hidden(x)))

    return TorchModel(Net(), torch.nn.CrossEntropyLoss(), canonical_names=True)


def _keras(call_order: bool) -> Any:
    from flwr_declearn.model.tensorflow import TensorflowModel

    class Net(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            if call_order:
                self.hidden = keras.layers.Dense(32)
                self.out = keras.layers.Dense(10)
            else:
                self.out = keras.layers.Dense(10)
                self.hidden = keras.layers.Dense(32)

        def call(self, x: Any) -> Any:
            return self.out(keras.activations.relu(self.hidden(x)))

    net = Net()
    net(np.zeros((1, 64), "float32"))
    loss = "sparse_categorical_crossentropy"
    return TensorflowModel(net, loss=loss, canonical_names=True)


def _haiku(call_order: bool) -> Any:
    from flwr_declearn.model.haiku import HaikuModel

    def forward(x: Any) -> Any:
        if call_order:
            hidden, out = hk.Linear(32, name="hidden"), hk.Linear(10, name="out")
        else:
            out, hidden = hk.Linear(10, name="out"), hk.Linear(32, name="hidden")
        return out(jax.nn.relu(hidden(x)))

    model = HaikuModel(forward, _loss, seed=0, canonical_names=True)
    model.initialize(DATA_INFO)
    return model


def _jax(keys: tuple[str, str]) -> Any:
    from flwr_declearn.model.jax import JaxModel

    first, second = keys
    params = {
        first: {"kernel": np.zeros((64, 32), "float32"), "bias": np.zeros(32, "float32")},
        second: {"kernel": np.zeros((32, 10), "float32"), "bias": np.zeros(10, "float32")},
    }

    def apply(p: Any, x: Any) -> Any:
        hidden = jax.nn.relu(x @ p[first]["kernel"] + p[first]["bias"])
        return hidden @ p[second]["kernel"] + p[second]["bias"]

    return JaxModel(apply, params, _loss, canonical_names=True)


CALL_ORDER = {
    "dense_0/kernel": (64, 32),
    "dense_0/bias": (32,),
    "dense_1/kernel": (32, 10),
    "dense_1/bias": (10,),
}


def test_an_mlp_declared_in_call_order_gets_the_same_names_in_every_framework() -> None:
    for model in (_torch(True), _keras(True), _haiku(True), _jax(("dense_0", "dense_1"))):
        assert _specs(model) == CALL_ORDER, type(model).__name__


def test_each_framework_numbers_layers_in_its_own_weight_order() -> None:
    declared = {
        "dense_0/kernel": (32, 10),
        "dense_0/bias": (10,),
        "dense_1/kernel": (64, 32),
        "dense_1/bias": (32,),
    }
    assert _specs(_torch(False)) == declared  # registration order
    assert _specs(_keras(False)) == declared  # attribute order of a subclassed model
    assert _specs(_haiku(False)) == CALL_ORDER  # parameters created in call order
    # JAX: the pytree's order, dict keys sorted ("out" < "z_hidden" whatever the calls).
    assert _specs(_jax(("z_hidden", "out"))) == declared


def test_a_client_numbering_layers_otherwise_is_named_on_the_first_round() -> None:
    strategy = DeclearnMessageStrategy(
        model=_haiku(True),
        client_optimizer=Optimizer(0.1),
        server_optimizer=Optimizer(1.0),
        on_spec_mismatch="fail",
    )
    weights = {name: np.asarray(v) for name, v in _torch(False).get_weights().coefs.items()}
    reply = Message(
        RecordDict(
            {
                "arrays": arrays_to_record(weights),
                "metrics": MetricRecord({"num-examples": 10}),
            }
        ),
        reply_to=Message(RecordDict(), dst_node_id=7, message_type="train"),
    )
    reply.metadata.__dict__["_src_node_id"] = 7
    mismatch = r"client 7: Weight arrays do not match the model: 'dense_0/"
    with pytest.raises(SpecMismatchError, match=mismatch):
        strategy.aggregate_train(1, [reply])
