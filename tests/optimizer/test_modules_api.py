"""OptiModule API: registration, configs and states through JSON, clear errors, no shared state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import list_optim_modules
from flwr_declearn.optimizer.modules import (
    AdaGradModule,
    AdamModule,
    MomentumModule,
    OptiModule,
    ScaffoldClientModule,
)
from flwr_declearn.utils import json_dumps, json_loads

from ._helpers import SHAPES, assert_close, gradient_sequence, ours, vector_types

ALL_MODULES: dict[str, dict[str, Any]] = {
    "adam": {"beta_1": 0.8, "amsgrad": True, "round_reset": True},
    "yogi": {"beta_2": 0.95, "eps": 1e-4, "amsgrad": True},
    "adagrad": {"eps": 1e-5, "round_reset": True},
    "rmsprop": {"beta": 0.95, "round_reset": True},
    "momentum": {"beta": 0.6, "nesterov": True, "round_reset": True},
    "ewma": {"beta": 0.7, "round_reset": True},
    "yogi-momentum": {"beta": 0.4},
    "l2-clipping": {"max_norm": 2.0},
    "l2-global-clipping": {"max_norm": 2.0},
    "gaussian-noise": {"std": 0.1, "safe_mode": False, "seed": 7},
    "scaffold-client": {},
    "scaffold-server": {},
}


def _prepare(module: OptiModule, vtype: type[Vector], grads: dict[str, np.ndarray]) -> None:
    """Give aux-var-driven modules a non-trivial state."""
    if isinstance(module, ScaffoldClientModule):
        module.process_aux_var({"state": ours(vtype, grads) * 0.3})


def _run_and_restore(
    vtype: type[Vector],
    name: str,
    grads: list[dict[str, np.ndarray]],
    restore: Callable[[dict[str, Any]], Any],
) -> tuple[OptiModule, OptiModule]:
    """Module `name` run on `grads`, and a fresh one set to its state passed through `restore`."""
    module = OptiModule.from_specs(name, ALL_MODULES[name])
    _prepare(module, vtype, grads[0])
    for arrays in grads:
        module.run(ours(vtype, arrays))
    clone = OptiModule.from_specs(name, module.get_config())
    clone.set_state(restore(module.get_state()))
    return module, clone


def _through_json(state: dict[str, Any]) -> Any:
    """`state` dumped to plain JSON and loaded back."""
    payload = json_dumps(state)
    json.loads(payload)  # plain JSON
    return json_loads(payload)


def test_every_declearn_module_name_is_registered() -> None:
    assert set(list_optim_modules()) >= set(ALL_MODULES)


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_config_round_trips_through_json_and_keeps_round_reset(name: str) -> None:
    module = OptiModule.from_specs(name, ALL_MODULES[name])
    config = json.loads(json.dumps(module.get_config()))
    assert config == {**config, **ALL_MODULES[name]}
    rebuilt = OptiModule.from_specs(name, config)
    assert type(rebuilt) is type(module)
    assert rebuilt.get_config() == module.get_config()


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_declearn_module_config_builds_ours_unchanged(name: str) -> None:
    from declearn.optimizer.modules import OptiModule as DeclearnModule

    declearn_config = json.loads(json.dumps(DeclearnModule.from_specs(name, {}).get_config()))
    module = OptiModule.from_specs(name, declearn_config)
    assert module.get_config() == {**module.get_config(), **declearn_config}


@vector_types
@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_state_round_trips_through_json_and_resumes_identically(
    vtype: type[Vector], name: str
) -> None:
    grads = gradient_sequence(SHAPES["mixed"], steps=10, seed=2)
    module, clone = _run_and_restore(vtype, name, grads[:5], _through_json)
    for arrays in grads[5:]:
        assert_close(clone.run(ours(vtype, arrays)), module.run(ours(vtype, arrays)), rtol=0.0)
    assert json_dumps(clone.get_state()) == json_dumps(module.get_state())


@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_fresh_state_round_trips_through_json(name: str) -> None:
    module = OptiModule.from_specs(name, ALL_MODULES[name])
    clone = OptiModule.from_specs(name, ALL_MODULES[name])
    clone.set_state(json_loads(json_dumps(module.get_state())))
    assert json_dumps(clone.get_state()) == json_dumps(module.get_state())


@pytest.mark.parametrize(
    "name", [n for n in ALL_MODULES if OptiModule.from_specs(n, ALL_MODULES[n]).get_state()]
)
def test_set_state_names_a_missing_state_variable(name: str) -> None:
    module = OptiModule.from_specs(name, ALL_MODULES[name])
    state = module.get_state()
    missing = sorted(state)[0]
    del state[missing]
    with pytest.raises(KeyError, match=missing):
        module.set_state(state)


def test_stateless_module_rejects_state_data() -> None:
    with pytest.raises(KeyError, match="l2-clipping"):
        OptiModule.from_specs("l2-clipping", {}).set_state({"velocity": 0.0})


def test_unknown_name_and_bad_config_raise_clear_errors() -> None:
    with pytest.raises(KeyError, match="registered names"):
        OptiModule.from_specs("adamw", {})
    with pytest.raises(TypeError, match="adam"):
        OptiModule.from_specs("adam", {"beta1": 0.9})
    with pytest.raises(ValueError, match="beta"):
        MomentumModule(beta=1.0)
    with pytest.raises(ValueError, match="max_norm"):
        OptiModule.from_specs("l2-clipping", {"max_norm": 0.0})
    with pytest.raises(TypeError, match="seed"):
        OptiModule.from_specs("gaussian-noise", {"seed": "abc"})


def test_module_without_aux_vars_rejects_them() -> None:
    with pytest.raises(TypeError, match="does not expect auxiliary variables"):
        AdamModule().process_aux_var({"state": 1.0})


def test_set_state_rejects_non_vector_state() -> None:
    with pytest.raises(TypeError, match="velocity"):
        MomentumModule().set_state({"velocity": [1.0, 2.0]})


def test_subclasses_register_and_can_opt_out() -> None:
    class Halve(OptiModule):
        name: ClassVar[str] = "test-halve"

        def run(self, gradients: Vector) -> Vector:
            return gradients * 0.5

    class Unlisted(OptiModule, register=False):
        name: ClassVar[str] = "test-unlisted"

        def run(self, gradients: Vector) -> Vector:
            return gradients

    assert list_optim_modules()["test-halve"] is Halve
    assert "test-unlisted" not in list_optim_modules()
    assert isinstance(OptiModule.from_specs("test-halve", {}), Halve)
    with pytest.raises(TypeError, match="name"):

        class Nameless(AdamModule):  # inherits 'adam': would shadow it
            pass


@vector_types
def test_outputs_are_not_modified_by_later_steps(vtype: type[Vector]) -> None:
    # Modules may return their own state (ewma, momentum): later steps must not alter it.
    grads = gradient_sequence(SHAPES["dense"], steps=4, seed=9)
    for name, config in ALL_MODULES.items():
        module = OptiModule.from_specs(name, config)
        _prepare(module, vtype, grads[0])
        first = module.run(ours(vtype, grads[0]))
        snapshot = {k: np.array(v, copy=True) for k, v in first.pack().items()}
        for arrays in grads[1:]:
            module.run(ours(vtype, arrays))
        assert_close(first, NumpyVector(snapshot), rtol=0.0)


@vector_types
def test_inputs_are_not_modified(vtype: type[Vector]) -> None:
    grads = gradient_sequence(SHAPES["dense"], steps=3, seed=4)
    for name, config in ALL_MODULES.items():
        module = OptiModule.from_specs(name, config)
        _prepare(module, vtype, grads[0])
        for arrays in grads:
            vec = ours(vtype, arrays)
            module.run(vec)
            assert_close(vec, NumpyVector(arrays), rtol=0.0)


@settings(max_examples=25, deadline=None)
@given(
    beta_1=st.floats(0.0, 0.99),
    beta_2=st.floats(0.0, 0.999),
    eps=st.floats(1e-9, 1e-2),
    amsgrad=st.booleans(),
    yogi=st.booleans(),
)
def test_adam_family_matches_declearn_for_any_hyper_parameters(
    beta_1: float, beta_2: float, eps: float, amsgrad: bool, yogi: bool
) -> None:
    from declearn.optimizer.modules import OptiModule as DeclearnModule

    from ._helpers import declearn_vector

    name = "yogi" if yogi else "adam"
    config = {"beta_1": beta_1, "beta_2": beta_2, "eps": eps, "amsgrad": amsgrad}
    module = OptiModule.from_specs(name, config)
    oracle = DeclearnModule.from_specs(name, config)
    for arrays in gradient_sequence(SHAPES["dense"], steps=20, seed=1):
        assert_close(module.run(NumpyVector(arrays)), oracle.run(declearn_vector(arrays)))


def _as_numpy_vectors(state: Any) -> Any:
    if isinstance(state, Vector):
        return NumpyVector(state.pack())
    if isinstance(state, dict):
        return {k: _as_numpy_vectors(v) for k, v in state.items()}
    return state


@vector_types
@pytest.mark.parametrize("name", list(ALL_MODULES))
def test_state_restored_as_numpy_vectors_serves_framework_gradients(
    vtype: type[Vector], name: str
) -> None:
    grads = gradient_sequence(SHAPES["dense"], steps=6, seed=12)
    module, clone = _run_and_restore(vtype, name, grads[:3], _as_numpy_vectors)
    for arrays in grads[3:]:
        out = clone.run(ours(vtype, arrays))
        assert type(out) is vtype
        assert_close(out, module.run(ours(vtype, arrays)))


def test_scalar_state_set_directly_acts_as_a_filled_vector() -> None:
    """declearn's tests preset e.g. AdaGrad's accumulator to Keras' 0.1 as a plain float."""
    grads = NumpyVector({"w": np.array([1.0, -2.0, 0.5], dtype="float32")})
    module = AdaGradModule(eps=0.0)
    module.state = 0.1  # type: ignore[assignment]
    out = module.run(grads)
    coefs = grads.coefs["w"]
    expected = coefs / np.sqrt(0.1 + coefs**2)
    np.testing.assert_allclose(out.coefs["w"], expected, rtol=1e-6)
    assert out.coefs["w"].dtype == np.float32
    module.state = True  # type: ignore[assignment]
    with pytest.raises(TypeError, match="must be a Vector, a number or None"):
        module.run(grads)
