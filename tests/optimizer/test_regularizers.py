"""Regularizers give declearn 2.9.1's corrected gradients; registration and configs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer import list_optim_regularizers
from flwr_declearn.optimizer.regularizers import FedProxRegularizer, Regularizer

from ._helpers import SHAPES, assert_close, declearn_vector, gradient_sequence, ours, vector_types

CASES: list[tuple[str, dict[str, Any]]] = [
    ("fedprox", {}),
    ("fedprox", {"alpha": 0.7}),
    ("lasso", {}),
    ("lasso", {"alpha": 0.3}),
    ("ridge", {}),
    ("ridge", {"alpha": 0.25}),
]


def test_declearn_regularizers_are_registered() -> None:
    assert set(list_optim_regularizers()) >= {"fedprox", "lasso", "ridge"}


@vector_types
@pytest.mark.parametrize("shapes", SHAPES.values(), ids=list(SHAPES))
@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_regularizer_matches_declearn_over_20_steps_and_rounds(
    vtype: type[Vector], shapes: dict[str, Any], name: str, config: dict[str, Any]
) -> None:
    from declearn.optimizer.regularizers import Regularizer as DeclearnRegularizer

    ours_reg = Regularizer.from_specs(name, dict(config))
    oracle = DeclearnRegularizer.from_specs(name, dict(config))
    grads = gradient_sequence(shapes, steps=20, seed=1)
    weights = gradient_sequence(shapes, steps=20, seed=2)
    for step, (g, w) in enumerate(zip(grads, weights, strict=True)):
        if step % 6 == 0:
            ours_reg.on_round_start()
            oracle.on_round_start()
        out = ours_reg.run(ours(vtype, g), ours(vtype, w))
        assert type(out) is vtype
        assert_close(out, oracle.run(declearn_vector(g), declearn_vector(w)))


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_regularizer_config_round_trips_and_loads_declearn_config(
    name: str, config: dict[str, Any]
) -> None:
    from declearn.optimizer.regularizers import Regularizer as DeclearnRegularizer

    reg = Regularizer.from_specs(name, config)
    rebuilt = Regularizer.from_specs(name, json.loads(json.dumps(reg.get_config())))
    assert rebuilt.get_config() == reg.get_config()
    theirs = json.loads(json.dumps(DeclearnRegularizer.from_specs(name, config).get_config()))
    assert Regularizer.from_specs(name, theirs).get_config() == reg.get_config()


def test_fedprox_keeps_its_own_copy_of_the_reference_weights() -> None:
    import numpy as np

    from flwr_declearn.model.numpy import NumpyVector

    buffer = np.ones(3)
    reg = FedProxRegularizer(alpha=1.0)
    grads = NumpyVector({"w": np.zeros(3)})
    reg.run(grads, NumpyVector({"w": buffer}))
    buffer += 1.0  # a model that updates its weights in place
    out = reg.run(grads, NumpyVector({"w": buffer}))
    assert np.array_equal(out.coefs["w"], np.ones(3))


def test_regularizer_errors_are_clear() -> None:
    with pytest.raises(KeyError, match="registered names"):
        Regularizer.from_specs("elastic", {})
    with pytest.raises(ValueError, match="alpha"):
        Regularizer.from_specs("ridge", {"alpha": -1.0})
    with pytest.raises(TypeError, match="lasso"):
        Regularizer.from_specs("lasso", {"beta": 1.0})
