"""adam, rmsprop, adagrad and momentum equal torch.optim's and optax's optimizers.

Hyper-parameter mapping (our module -> reference):

- adam(beta_1, beta_2, eps) -> torch.optim.Adam(betas=(beta_1, beta_2), eps=eps) and
  optax.adam(b1=beta_1, b2=beta_2, eps=eps); all put eps outside the root of the
  bias-corrected second moment. amsgrad -> optax.amsgrad (max over bias-corrected
  v_hat, like ours); torch's amsgrad takes the max over raw v_t, so it differs.
- rmsprop(beta, eps) -> torch.optim.RMSprop(alpha=beta, eps=eps) and
  optax.rmsprop(decay=beta, eps=eps, eps_in_sqrt=False) (optax puts eps inside the
  root by default). No bias correction anywhere.
- adagrad(eps) -> torch.optim.Adagrad(eps=eps, initial_accumulator_value=0) (eps outside
  the root) and optax.adagrad(initial_accumulator_value=0, eps=0) (optax adds eps inside
  the root, so both use eps=0 there).
- momentum(beta, nesterov) -> torch.optim.SGD(momentum=beta, dampening=0, nesterov=...)
  and optax.sgd(momentum=beta, nesterov=...): the learning rate scales the whole output.

The reference takes lr-scaled steps; we compare with `Optimizer(lrate, modules=[...])`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from ._helpers import SHAPES, assert_close, gradient_sequence
from ._models import NumpyLinearModel

LR = 0.05

CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], str, dict[str, Any]]] = [
    # (our module, config, torch optimizer, kwargs, optax alias, kwargs)
    (
        "adam",
        {"beta_1": 0.9, "beta_2": 0.99, "eps": 1e-7},
        "Adam",
        {"betas": (0.9, 0.99), "eps": 1e-7},
        "adam",
        {"b1": 0.9, "b2": 0.99, "eps": 1e-7},
    ),
    (
        "adam",
        {"beta_1": 0.8, "beta_2": 0.999, "eps": 1e-8, "amsgrad": True},
        "",
        {},
        "amsgrad",
        {"b1": 0.8, "b2": 0.999, "eps": 1e-8},
    ),
    (
        "rmsprop",
        {"beta": 0.9, "eps": 1e-7},
        "RMSprop",
        {"alpha": 0.9, "eps": 1e-7},
        "rmsprop",
        {"decay": 0.9, "eps": 1e-7, "eps_in_sqrt": False},
    ),
    (
        "adagrad",
        {"eps": 1e-10},
        "Adagrad",
        {"eps": 1e-10, "initial_accumulator_value": 0.0},
        "",
        {},
    ),
    (
        "adagrad",
        {"eps": 0.0},
        "",
        {},
        "adagrad",
        {"initial_accumulator_value": 0.0, "eps": 0.0},
    ),
    ("momentum", {"beta": 0.9}, "SGD", {"momentum": 0.9}, "sgd", {"momentum": 0.9}),
    (
        "momentum",
        {"beta": 0.7, "nesterov": True},
        "SGD",
        {"momentum": 0.7, "nesterov": True},
        "sgd",
        {"momentum": 0.7, "nesterov": True},
    ),
]


def _our_updates(name: str, config: dict[str, Any], grads: list[dict[str, np.ndarray]]) -> list:
    model = NumpyLinearModel.from_shapes(SHAPES["dense"])
    optim = Optimizer(lrate=LR, modules=[(name, config)])
    return [optim.compute_updates_from_gradients(model, NumpyVector(g)) for g in grads]


def _torch_updates(cls: str, kwargs: dict[str, Any], grads: list[dict[str, np.ndarray]]) -> list:
    torch = pytest.importorskip("torch")
    params = {
        k: torch.zeros(v.shape, dtype=torch.float64, requires_grad=True)
        for k, v in grads[0].items()
    }
    optim = getattr(torch.optim, cls)(list(params.values()), lr=LR, **kwargs)
    updates = []
    for arrays in grads:
        before = {k: p.detach().clone() for k, p in params.items()}
        for key, param in params.items():
            param.grad = torch.from_numpy(arrays[key].copy())
        optim.step()
        updates.append({k: (p.detach() - before[k]).numpy() for k, p in params.items()})
    return updates


def _optax_updates(alias: str, kwargs: dict[str, Any], grads: list[dict[str, np.ndarray]]) -> list:
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp

    transform = getattr(optax, alias)(learning_rate=LR, **kwargs)
    params = {k: jnp.zeros(v.shape, dtype=jnp.float64) for k, v in grads[0].items()}
    state = transform.init(params)
    updates = []
    for arrays in grads:
        upd, state = transform.update({k: jnp.asarray(v) for k, v in arrays.items()}, state, params)
        updates.append({k: np.asarray(v) for k, v in upd.items()})
    return updates


@pytest.mark.parametrize(
    ("name", "config", "torch_cls", "torch_kw", "optax_alias", "optax_kw"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
def test_module_equals_torch_optim_and_optax(
    name: str,
    config: dict[str, Any],
    torch_cls: str,
    torch_kw: dict[str, Any],
    optax_alias: str,
    optax_kw: dict[str, Any],
) -> None:
    grads = gradient_sequence(SHAPES["dense"], steps=20, seed=11)
    mine = _our_updates(name, config, grads)
    checked = 0
    if torch_cls:
        for got, exp in zip(mine, _torch_updates(torch_cls, torch_kw, grads), strict=True):
            assert_close(got, NumpyVector(exp))
        checked += 1
    if optax_alias:
        for got, exp in zip(mine, _optax_updates(optax_alias, optax_kw, grads), strict=True):
            assert_close(got, NumpyVector(exp))
        checked += 1
    assert checked


def test_torch_amsgrad_differs_from_ours_as_documented() -> None:
    # torch keeps the max of raw v_t and bias-corrects it afterwards; we (like declearn
    # and optax) keep the max of bias-corrected v_hat. Gradients that shrink expose it.
    grads = gradient_sequence(SHAPES["dense"], steps=20, seed=5)
    grads = [{k: v / (1 + i) ** 2 for k, v in g.items()} for i, g in enumerate(grads)]
    mine = _our_updates("adam", {"amsgrad": True, "beta_2": 0.9, "eps": 1e-8}, grads)
    theirs = _torch_updates("Adam", {"amsgrad": True, "betas": (0.9, 0.9), "eps": 1e-8}, grads)
    with pytest.raises(AssertionError):
        for got, exp in zip(mine, theirs, strict=True):
            assert_close(got, NumpyVector(exp))
