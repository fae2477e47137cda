"""Every OptiModule gives declearn 2.9.1's outputs on the same gradients, on every Vector type."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.api import Vector
from flwr_declearn.optimizer.modules import OptiModule

from ._helpers import SHAPES, assert_close, declearn_vector, gradient_sequence, ours, vector_types

# (name, config): declearn accepts the same configs.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("adam", {}),
    ("adam", {"beta_1": 0.8, "beta_2": 0.999, "eps": 1e-8}),
    ("adam", {"amsgrad": True}),
    ("yogi", {}),
    ("yogi", {"amsgrad": True, "beta_2": 0.9, "eps": 1e-3}),
    ("adagrad", {}),
    ("adagrad", {"eps": 1e-3}),
    ("rmsprop", {}),
    ("rmsprop", {"beta": 0.99, "eps": 1e-8}),
    ("momentum", {}),
    ("momentum", {"beta": 0.5, "nesterov": True}),
    ("ewma", {}),
    ("ewma", {"beta": 0.3}),
    ("yogi-momentum", {}),
    ("yogi-momentum", {"beta": 0.5}),
    ("l2-clipping", {"max_norm": 1.0}),
    ("l2-clipping", {"max_norm": 3.5}),
    ("l2-global-clipping", {"max_norm": 1.0}),
    ("l2-global-clipping", {"max_norm": 50.0}),
    ("gaussian-noise", {"std": 0.5, "safe_mode": False, "seed": 42}),
]

ROUND_RESET_CASES: list[tuple[str, dict[str, Any]]] = [
    ("adam", {"round_reset": True}),
    ("yogi", {"round_reset": True}),
    ("adagrad", {"round_reset": True}),
    ("rmsprop", {"round_reset": True}),
    ("momentum", {"round_reset": True, "nesterov": True}),
    ("ewma", {"round_reset": True}),
    ("yogi-momentum", {"round_reset": True}),
]


def _declearn_module(name: str, config: dict[str, Any]) -> Any:
    from declearn.optimizer.modules import OptiModule as DeclearnModule

    return DeclearnModule.from_specs(name, dict(config))


def _run_both(
    vtype: type[Vector],
    name: str,
    config: dict[str, Any],
    shapes: dict[str, tuple[int, ...]],
    round_every: int | None = None,
) -> None:
    module = OptiModule.from_specs(name, dict(config))
    oracle = _declearn_module(name, config)
    for step, grads in enumerate(gradient_sequence(shapes, steps=20, seed=len(name))):
        if round_every and step and step % round_every == 0:
            module.on_round_start()
            oracle.on_round_start()
        out = module.run(ours(vtype, grads))
        expected = oracle.run(declearn_vector(grads))
        assert type(out) is vtype
        assert out.dtypes() == {k: "float64" for k in shapes}
        assert_close(out, expected)


@vector_types
@pytest.mark.parametrize("shapes", SHAPES.values(), ids=list(SHAPES))
@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_module_matches_declearn_over_20_steps(
    vtype: type[Vector], shapes: dict[str, Any], name: str, config: dict[str, Any]
) -> None:
    _run_both(vtype, name, config, shapes)


@vector_types
@pytest.mark.parametrize(
    ("name", "config"), ROUND_RESET_CASES, ids=[n for n, _ in ROUND_RESET_CASES]
)
def test_round_reset_matches_declearn(
    vtype: type[Vector], name: str, config: dict[str, Any]
) -> None:
    _run_both(vtype, name, config, SHAPES["dense"], round_every=7)


@pytest.mark.parametrize("name", ["adam", "yogi"])
def test_amsgrad_round_reset_forgets_the_maximum(name: str) -> None:
    # declearn 2.9.1 resets a misspelled attribute and keeps its maximum: we reset it.
    from flwr_declearn.model.numpy import NumpyVector

    grads = gradient_sequence(SHAPES["dense"], steps=8, seed=3)
    module = OptiModule.from_specs(name, {"amsgrad": True, "round_reset": True})
    for arrays in grads[:5]:
        module.run(NumpyVector(arrays))
    module.on_round_start()
    fresh = OptiModule.from_specs(name, {"amsgrad": True})
    for arrays in grads[5:]:
        assert_close(module.run(NumpyVector(arrays)), fresh.run(NumpyVector(arrays)), rtol=0.0)


@vector_types
def test_modules_accept_float32_and_keep_dtype(vtype: type[Vector]) -> None:
    arrays = {
        k: v.astype(np.float32) for k, v in gradient_sequence(SHAPES["dense"], steps=1)[0].items()
    }
    for name, config in CASES:
        module = OptiModule.from_specs(name, dict(config))
        out = module.run(ours(vtype, arrays))
        out = module.run(ours(vtype, arrays))
        assert out.dtypes() == {k: "float32" for k in arrays}, name
        expected = _declearn_module(name, config)
        expected.run(declearn_vector(arrays))
        assert_close(out, expected.run(declearn_vector(arrays)), rtol=1e-4)
