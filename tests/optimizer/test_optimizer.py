"""Optimizer: declearn 2.9.1's updates and configs for full pipelines; aux-var routing."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import (
    Optimizer,
    OptiModule,
    PerClientAuxVar,
    merge_client_aux_var,
    split_server_aux_var,
)
from flwr_declearn.optimizer.modules import AdamModule, ScaffoldServerModule
from flwr_declearn.utils import json_dumps, json_loads

from ._helpers import assert_close, declearn_vector, gradient_sequence, ours, vector_types
from ._models import NumpyLinearModel

SHAPES = {"kernel": (4, 3), "bias": (3,)}

CONFIGS: dict[str, dict[str, Any]] = {
    "sgd": {"lrate": 0.1},
    "adam-wdecay": {"lrate": 0.01, "w_decay": 0.05, "modules": [["adam", {"amsgrad": True}]]},
    "fedprox-momentum": {
        "lrate": 0.05,
        "regularizers": [["fedprox", {"alpha": 0.1}], ["ridge", {"alpha": 0.01}]],
        "modules": [["l2-global-clipping", {"max_norm": 2.0}], ["momentum", {"nesterov": True}]],
    },
    "dp-sgd-scheduled": {
        "lrate": ["exponential-decay", {"base": 0.1, "rate": 0.9}],
        "w_decay": ["warmup", {"base": 0.01, "warmup": 5}],
        "regularizers": [["lasso", {"alpha": 0.02}]],
        "modules": [
            ["l2-clipping", {"max_norm": 1.0}],
            ["gaussian-noise", {"std": 0.01, "safe_mode": False, "seed": 3}],
            ["yogi", {}],
        ],
    },
    "cyclic-rmsprop": {
        "lrate": ["cyclic-triangular", {"base": 0.001, "max_lr": 0.1, "stepsize": 4}],
        "modules": ["rmsprop", ["ewma", {"beta": 0.5}]],
    },
}


class _DeclearnWeights:
    """The part of a declearn Model its Optimizer uses: trainable weights."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = {k: v.copy() for k, v in weights.items()}

    def get_weights(self, trainable: bool = False) -> Any:
        return declearn_vector(self.weights)

    def apply_updates(self, updates: Any) -> None:
        self.weights = {k: v + updates.coefs[k] for k, v in self.weights.items()}


def _declearn_optimizer(config: dict[str, Any]) -> Any:
    from declearn.optimizer import Optimizer as DeclearnOptimizer

    return DeclearnOptimizer.from_config(json.loads(json.dumps(config)))


@vector_types
@pytest.mark.parametrize("label", list(CONFIGS))
def test_optimizer_updates_match_declearn_over_20_steps(vtype: type[Vector], label: str) -> None:
    config = CONFIGS[label]
    model = NumpyLinearModel.from_shapes(SHAPES, vector_type=vtype.__name__)
    oracle_model = _DeclearnWeights(model.weights)
    optim = Optimizer.from_config(json.loads(json.dumps(config)))
    oracle = _declearn_optimizer(config)
    grads = gradient_sequence(SHAPES, steps=20, seed=8)
    for step, arrays in enumerate(grads):
        if step % 5 == 0:  # fedprox takes its reference at each round's first step
            optim.start_round()
            oracle.start_round()
        updates = optim.compute_updates_from_gradients(model, ours(vtype, arrays))
        expected = oracle.compute_updates_from_gradients(oracle_model, declearn_vector(arrays))
        assert type(updates) is vtype
        assert_close(updates, expected)
        model.apply_updates(updates)
        oracle_model.apply_updates(expected)


@pytest.mark.parametrize("label", list(CONFIGS))
def test_declearn_optimizer_config_builds_ours_unchanged(label: str) -> None:
    declearn_config = json.loads(json.dumps(_declearn_optimizer(CONFIGS[label]).get_config()))
    optim = Optimizer.from_config(declearn_config)
    ours_config = json.loads(json.dumps(optim.get_config()))
    assert ours_config["lrate"] == declearn_config["lrate"]
    assert ours_config["w_decay"] == declearn_config["w_decay"]
    for key in ("regularizers", "modules"):
        assert [n for n, _ in ours_config[key]] == [n for n, _ in declearn_config[key]]
        for (_, mine), (_, theirs) in zip(ours_config[key], declearn_config[key], strict=True):
            assert mine == {**mine, **theirs}  # ours adds round_reset where declearn drops it
    assert Optimizer.from_config(ours_config).get_config() == optim.get_config()


def test_plugins_accept_instances_names_and_specs_and_int_rates() -> None:
    optim = Optimizer(lrate=1, modules=[AdamModule(beta_1=0.5), "momentum", ("ewma", {})])
    assert [m.name for m in optim.modules] == ["adam", "momentum", "ewma"]
    assert optim.lrate == 1.0 and optim.w_decay == 0.0
    assert optim.get_config()["lrate"] == 1.0
    with pytest.raises(TypeError, match="lrate"):
        Optimizer(lrate="fast")
    with pytest.raises(TypeError, match="OptiModule"):
        Optimizer(lrate=0.1, modules=[3])  # type: ignore[list-item]
    with pytest.raises(KeyError, match="unknown-module"):
        Optimizer(lrate=0.1, modules=["unknown-module"])
    with pytest.raises(KeyError, match="lrates"):
        Optimizer.from_config({"lrate": 0.1, "lrates": 0.2})


def test_round_scheduled_rate_uses_the_current_round() -> None:
    # declearn 2.9.1 computes each rate after the previous step, so the first step of a
    # round still sees the previous round's value; we use the value of the current round.
    model = NumpyLinearModel.from_shapes(SHAPES)
    optim = Optimizer(lrate=["warmup-rounds", {"base": 1.0, "warmup": 4}])
    ones = NumpyVector({k: np.ones(s) for k, s in SHAPES.items()})
    for round_ in range(6):
        optim.start_round()
        for _ in range(3):
            expected = min(round_ + 1, 4) / 4
            assert optim.lrate == expected
            upd = optim.compute_updates_from_gradients(model, ones)
            assert np.allclose(upd.coefs["bias"], -expected)


class _CountingModel(NumpyLinearModel):
    calls = 0

    def get_weights(self, trainable: bool = False) -> Vector:
        type(self).calls += 1
        return super().get_weights(trainable)


def test_weights_are_fetched_only_when_needed() -> None:
    model = _CountingModel(4, 3)
    batch = (np.ones((5, 4)), np.zeros((5, 3)), None)
    Optimizer(lrate=0.1, modules=["adam"]).run_train_step(model, batch)
    assert _CountingModel.calls == 0
    Optimizer(lrate=0.1, w_decay=0.1).run_train_step(model, batch)
    Optimizer(lrate=0.1, regularizers=["ridge"]).run_train_step(model, batch)
    assert _CountingModel.calls == 2


def test_run_train_step_applies_clipped_gradients_through_the_pipeline() -> None:
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(8, 4)), rng.normal(size=(8, 3)), rng.uniform(size=8))
    model = NumpyLinearModel(4, 3)
    twin = NumpyLinearModel(4, 3)
    config = {"lrate": 0.1, "w_decay": 0.01, "modules": ["momentum"]}
    optim, manual = Optimizer.from_config(config), Optimizer.from_config(config)
    for _ in range(3):
        optim.run_train_step(model, batch, sclip=0.5)
        grads = twin.compute_batch_gradients(batch, max_norm=0.5)
        twin.apply_updates(manual.compute_updates_from_gradients(twin, grads))
    assert_close(model.weights_vector(), twin.weights_vector(), rtol=0.0)
    unclipped = NumpyLinearModel(4, 3)
    Optimizer.from_config(config).run_train_step(unclipped, batch)
    assert not np.allclose(unclipped.weights["kernel"], NumpyLinearModel(4, 3).weights["kernel"])


def test_start_round_reaches_schedulers_regularizers_and_modules() -> None:
    optim = Optimizer(
        lrate=["exponential-decay", {"base": 1.0, "rate": 0.5, "step_level": False}],
        regularizers=["fedprox"],
        modules=[["momentum", {"round_reset": True}]],
    )
    model = NumpyLinearModel(4, 3)
    grads = model.compute_batch_gradients((np.ones((2, 4)), np.ones((2, 3)), None))
    optim.start_round()
    optim.start_round()
    assert optim.lrate == 0.5
    optim.compute_updates_from_gradients(model, grads)
    assert optim.modules[0].get_state()["velocity"] is not None
    assert optim.regularizers[0].ref_wgt is not None  # type: ignore[attr-defined]
    optim.start_round()
    assert optim.modules[0].get_state()["velocity"] is None
    assert optim.regularizers[0].ref_wgt is None  # type: ignore[attr-defined]


# -- aux-vars ------------------------------------------------------------------------------------


class _Broadcast(OptiModule, register=False):
    name: ClassVar[str] = "test-broadcast"
    aux_name: ClassVar[str | None] = "test-aux"

    def __init__(self, payload: Any = None) -> None:
        self.payload = payload
        self.received: list[Any] = []

    def run(self, gradients: Vector) -> Vector:
        return gradients

    def collect_aux_var(self) -> Any:
        return self.payload

    def process_aux_var(self, aux_var: dict[str, Any]) -> None:
        self.received.append(aux_var)


def test_aux_vars_are_collected_and_routed_by_aux_name() -> None:
    module = _Broadcast({"x": 1})
    optim = Optimizer(lrate=0.1, modules=["adam", module])
    assert optim.collect_aux_var() == {"test-aux": {"x": 1}}
    optim.process_aux_var({"test-aux": {"y": 2}})
    assert module.received == [{"y": 2}]
    with pytest.raises(KeyError, match="'scaffold'"):
        optim.process_aux_var({"scaffold": {"state": 0.0}})


def test_two_modules_sharing_an_aux_name_are_rejected() -> None:
    with pytest.raises(ValueError, match="scaffold"):
        Optimizer(lrate=0.1, modules=["scaffold-client", "scaffold-server"])


def test_split_server_aux_var_broadcasts_copies_per_client_values_and_drops_none() -> None:
    per_client = PerClientAuxVar({"a": {"v": 1}, "b": {"v": 2}}, default={"v": 0})
    split = split_server_aux_var(
        {"bcast": {"s": 5}, "per": per_client, "none": None}, ["a", "b", "c"]
    )
    assert split == {
        "a": {"bcast": {"s": 5}, "per": {"v": 1}},
        "b": {"bcast": {"s": 5}, "per": {"v": 2}},
        "c": {"bcast": {"s": 5}, "per": {"v": 0}},
    }
    split["a"]["bcast"]["s"] = 6
    assert split["b"]["bcast"]["s"] == 5
    assert Optimizer.split_server_aux_var({}, ["a"]) == {"a": {}}


def test_split_server_aux_var_errors_name_the_problem() -> None:
    with pytest.raises(KeyError, match="'c'"):
        split_server_aux_var({"per": PerClientAuxVar({"a": {}})}, ["a", "c"])
    with pytest.raises(TypeError, match="'bad'"):
        split_server_aux_var({"bad": [1, 2]}, ["a"])  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="dict"):
        PerClientAuxVar({"a": 3})  # type: ignore[dict-item]


def test_merge_client_aux_var_regroups_by_aux_name() -> None:
    merged = merge_client_aux_var({"a": {"s": {"d": 1}}, "b": {"s": {"d": 2}, "t": {"e": 3}}})
    assert merged == {"s": {"a": {"d": 1}, "b": {"d": 2}}, "t": {"b": {"e": 3}}}
    with pytest.raises(TypeError, match="client 'a'"):
        merge_client_aux_var({"a": {"s": 1}})  # type: ignore[dict-item]


def test_server_module_receives_client_dicts() -> None:
    server = Optimizer(lrate=1.0, modules=["scaffold-server"])
    delta = NumpyVector({"w": np.ones(2)})
    server.process_aux_var({"scaffold": {"c1": {"delta": delta}, "c2": {"delta": delta * 3}}})
    (aux,) = server.collect_aux_var().values()
    assert np.array_equal(aux["state"].coefs["w"], np.full(2, 2.0))
    with pytest.raises(KeyError, match="delta"):
        server.process_aux_var({"scaffold": {"c3": {"state": delta}}})
    assert isinstance(server.modules[0], ScaffoldServerModule)


# -- state ---------------------------------------------------------------------------------------


@vector_types
def test_optimizer_state_round_trips_through_json(vtype: type[Vector]) -> None:
    config = CONFIGS["dp-sgd-scheduled"]
    model = NumpyLinearModel.from_shapes(SHAPES, vector_type=vtype.__name__)
    optim = Optimizer.from_config(config)
    grads = gradient_sequence(SHAPES, steps=8, seed=2)
    optim.start_round()
    for arrays in grads[:4]:
        optim.compute_updates_from_gradients(model, ours(vtype, arrays))
    clone = Optimizer.from_config(json.loads(json.dumps(optim.get_config())))
    clone.set_state(json_loads(json_dumps(optim.get_state())))
    for arrays in grads[4:]:
        assert_close(
            clone.compute_updates_from_gradients(model, ours(vtype, arrays)),
            optim.compute_updates_from_gradients(model, ours(vtype, arrays)),
            rtol=0.0,
        )


def test_failed_set_state_keeps_the_previous_state() -> None:
    optim = Optimizer(lrate=0.1, modules=["momentum", "adam"])
    model = NumpyLinearModel(4, 3)
    grads = model.compute_batch_gradients((np.ones((2, 4)), np.ones((2, 3)), None))
    optim.compute_updates_from_gradients(model, grads)
    before = json_dumps(optim.get_state())
    state = optim.get_state()
    state["modules"][1][1] = {"steps": 3}  # adam state lacking its moments
    with pytest.raises(KeyError, match="momentum"):
        optim.set_state(state)
    assert json_dumps(optim.get_state()) == before
    with pytest.raises(KeyError, match="modules"):
        optim.set_state({"lrate": {}, "w_decay": {}})
    with pytest.raises(KeyError, match="adam"):
        optim.set_state({**optim.get_state(), "modules": [["momentum", {"velocity": None}]]})


_MODULE_SPECS = [
    ["adam", {"amsgrad": True, "round_reset": True}],
    ["yogi", {"beta_2": 0.9}],
    ["rmsprop", {"round_reset": True}],
    ["adagrad", {}],
    ["momentum", {"nesterov": True}],
    ["ewma", {"beta": 0.5}],
    ["yogi-momentum", {}],
    ["l2-clipping", {"max_norm": 3.0}],
    ["l2-global-clipping", {}],
    ["gaussian-noise", {"std": 0.1, "safe_mode": False, "seed": 1}],
    ["scaffold-client", {}],
]
_RATES = [
    0.1,
    3,
    ["cosine-annealing", {"base": 0.0, "max_lr": 0.1, "duration": 10}],
    ["warmup", {"base": ["exponential-decay", {"base": 0.1, "rate": 0.9}], "warmup": 3}],
]


@settings(max_examples=40, deadline=None)
@given(
    modules=st.lists(st.sampled_from(_MODULE_SPECS), max_size=4),
    regularizers=st.lists(
        st.sampled_from([["fedprox", {"alpha": 0.1}], ["lasso", {}], ["ridge", {}]]), max_size=2
    ),
    lrate=st.sampled_from(_RATES),
    w_decay=st.sampled_from([0.0, *_RATES]),
)
def test_any_optimizer_config_round_trips_through_json(
    modules: list[Any], regularizers: list[Any], lrate: Any, w_decay: Any
) -> None:
    config = {"lrate": lrate, "w_decay": w_decay, "regularizers": regularizers, "modules": modules}
    if sum(name == "scaffold-client" for name, _ in modules) > 1:
        with pytest.raises(ValueError, match="scaffold"):
            Optimizer.from_config(config)
        return
    optim = Optimizer.from_config(config)
    dumped = json.loads(json.dumps(optim.get_config()))
    assert Optimizer.from_config(dumped).get_config() == optim.get_config()
    for (name, cfg), (dname, dcfg) in zip(modules, dumped["modules"], strict=True):
        assert name == dname and dcfg == {**dcfg, **cfg}


class _WeightsHolder:
    """Not a Model: only the two methods of `SupportsUpdates` (as a server's global weights)."""

    def __init__(self, weights: NumpyVector) -> None:
        self.weights = weights

    def get_weights(self, trainable: bool = False) -> NumpyVector:
        return self.weights

    def apply_updates(self, updates: NumpyVector, scale: float = 1.0) -> None:
        self.weights = self.weights + updates * scale


def test_optimizer_drives_any_supports_updates_holder_not_only_models() -> None:
    from flwr_declearn.optimizer import SupportsUpdates

    start = NumpyVector({"w": np.array([1.0, -2.0])})
    holder = _WeightsHolder(start)
    assert isinstance(holder, SupportsUpdates)
    optim = Optimizer(lrate=0.5, w_decay=0.1, regularizers=["ridge"], modules=["momentum"])
    grads = NumpyVector({"w": np.array([0.2, 0.4])})
    expected = start + optim.compute_updates_from_gradients(holder, grads)
    Optimizer.from_config(optim.get_config()).apply_gradients(holder, grads)
    assert_close(holder.weights, expected, rtol=0.0)
