"""declearn users' optimizer code runs unchanged: states, scale-less models, native optimizers."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest

from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer, OptiModule
from flwr_declearn.optimizer.modules import TensorflowOptiModule, TorchOptiModule
from flwr_declearn.utils import from_jsonable, to_jsonable

from ._helpers import SHAPES, assert_close, declearn_vector, gradient_sequence

MODULE_CASES = [
    ("adam", {}),
    ("adam", {"amsgrad": True}),
    ("yogi", {"beta_2": 0.9}),
    ("momentum", {"nesterov": True}),
    ("momentum", {}),
]


@pytest.mark.parametrize(
    ("name", "config"), MODULE_CASES, ids=[f"{n}-{c}" for n, c in MODULE_CASES]
)
def test_declearn_module_state_resumes_in_ours(name: str, config: dict[str, Any]) -> None:
    from declearn.optimizer.modules import OptiModule as DeclearnModule

    oracle = DeclearnModule.from_specs(name, dict(config))
    grads = gradient_sequence(SHAPES["dense"], steps=8, seed=4)
    for arrays in grads[:4]:
        oracle.run(declearn_vector(arrays))
    module = OptiModule.from_specs(name, dict(config))
    module.set_state(oracle.get_state())
    for arrays in grads[4:]:
        assert_close(module.run(NumpyVector(arrays)), oracle.run(declearn_vector(arrays)))


class _DeclearnStyleModel:
    """A model written for declearn: `apply_updates(updates)` takes no `scale`."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = {k: v.copy() for k, v in weights.items()}

    def get_weights(self, trainable: bool = False) -> Any:
        return NumpyVector(dict(self.weights))

    def apply_updates(self, updates: Any) -> None:
        self.weights = {k: v + np.asarray(updates.coefs[k]) for k, v in self.weights.items()}


class _ScaledModel(_DeclearnStyleModel):
    def apply_updates(self, updates: Any, scale: float = 1.0) -> None:
        super().apply_updates(updates * scale)


@pytest.mark.parametrize("w_decay", [0.0, 0.1])
def test_models_whose_apply_updates_takes_no_scale_get_declearn_calls(w_decay: float) -> None:
    optim = Optimizer(lrate=0.5, w_decay=w_decay, modules=["momentum"])
    reference = Optimizer.from_config(optim.get_config())
    model = _DeclearnStyleModel({"w": np.array([1.0, -2.0])})
    expected = _ScaledModel({"w": np.array([1.0, -2.0])})
    for arrays in gradient_sequence({"w": (2,)}, steps=3, seed=1):
        optim.apply_gradients(model, NumpyVector(arrays))
        reference.apply_gradients(expected, NumpyVector(arrays))
    np.testing.assert_allclose(model.weights["w"], expected.weights["w"], rtol=1e-15)


class _RaisesOnSetState(OptiModule, register=False):
    name: ClassVar[str] = "raises-on-set-state"

    def run(self, gradients: Any) -> Any:
        return gradients

    def set_state(self, state: dict[str, Any]) -> None:
        raise KeyError("always")


def test_set_state_raises_runtime_error_when_the_rollback_fails_too() -> None:
    optim = Optimizer(lrate=0.1, modules=[_RaisesOnSetState()])
    with pytest.raises(RuntimeError, match="restoring the previous state") as info:
        optim.set_state(optim.get_state())
    assert isinstance(info.value.__cause__, KeyError)


def test_set_state_keeps_key_error_when_the_rollback_works() -> None:
    optim = Optimizer(lrate=0.1, modules=["adam"])
    state = optim.get_state()
    state["modules"][0][1] = {"steps": 1}
    with pytest.raises(KeyError, match="momentum"):
        optim.set_state(state)


# -- native optimizers as modules ---------------------------------------------------------------


def _numpy(vec: Any) -> NumpyVector:
    return NumpyVector({k: np.asarray(v) for k, v in vec.coefs.items()})


TORCH_CASES = [
    ("torch.optim.Adam", {"betas": (0.8, 0.95)}),
    ("torch.optim.SGD", {"momentum": 0.9, "nesterov": True}),
    ("torch.optim.Adagrad", {}),
]


@pytest.mark.parametrize(("path", "kwargs"), TORCH_CASES, ids=[p for p, _ in TORCH_CASES])
def test_torch_optim_module_matches_declearn_and_resumes_from_its_state(
    path: str, kwargs: dict[str, Any]
) -> None:
    torch = pytest.importorskip("torch")
    from declearn.model.torch import TorchOptiModule as DeclearnTorchOptiModule
    from declearn.model.torch import TorchVector as DeclearnTorchVector

    from flwr_declearn.model.torch import TorchVector

    grads = gradient_sequence(SHAPES["dense"], steps=6, seed=3)
    module = TorchOptiModule(path, **kwargs)
    oracle = DeclearnTorchOptiModule(path, **kwargs)
    for arrays in grads[:3]:
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        out = module.run(TorchVector(tensors))
        assert_close(out, _numpy(oracle.run(DeclearnTorchVector(tensors))))
    resumed = OptiModule.from_specs("torch-optim", json.loads(json.dumps(module.get_config())))
    resumed.set_state(from_jsonable(json.loads(json.dumps(to_jsonable(oracle.get_state())))))
    for arrays in grads[3:]:
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        expected = _numpy(oracle.run(DeclearnTorchVector(tensors)))
        assert_close(resumed.run(TorchVector(tensors)), expected)


def test_torch_optim_module_imports_from_torch_only_unless_told() -> None:
    pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="imports only from torch"):
        TorchOptiModule("os.path.join")
    with pytest.raises(RuntimeError, match="imports only from torch"):
        TorchOptiModule.from_config({"optim_cls": "os.path.join", "kwargs": {"validate": False}})
    with pytest.raises(TypeError, match="torch Optimizer class"):
        TorchOptiModule("os.path.join", validate=False)
    with pytest.raises(TypeError, match="TorchVector"):
        TorchOptiModule("torch.optim.SGD").run(NumpyVector({"w": np.ones(2)}))


def test_tensorflow_optim_module_matches_declearn_and_round_trips_its_state() -> None:
    tf = pytest.importorskip("tensorflow")
    from declearn.model.tensorflow import TensorflowOptiModule as DeclearnTfOptiModule
    from declearn.model.tensorflow import TensorflowVector as DeclearnTfVector

    from flwr_declearn.model.tensorflow import TensorflowVector

    grads = gradient_sequence(SHAPES["dense"], steps=6, seed=5)
    module = TensorflowOptiModule("adam")
    oracle = DeclearnTfOptiModule("adam")
    for arrays in grads[:3]:
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        out = module.run(TensorflowVector(tensors))
        assert_close(out, _numpy(oracle.run(DeclearnTfVector(tensors))))
    resumed = OptiModule.from_specs("tensorflow-optim", module.get_config())
    resumed.set_state(module.get_state())
    for arrays in grads[3:]:
        tensors = {k: tf.constant(v) for k, v in arrays.items()}
        expected = _numpy(oracle.run(DeclearnTfVector(tensors)))
        assert_close(resumed.run(TensorflowVector(tensors)), expected)
