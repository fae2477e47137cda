"""Compiled (fused) training steps give the same results as the eager Optimizer path.

`Optimizer.run_train_step` runs gradients, modules and update as one compiled
call on models that support it (haiku, tensorflow). Each test trains two
identical copies: one with `run_train_step`, one with the eager
`compute_batch_gradients` + `apply_gradients`, and compares weights, losses and
optimizer states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.api import Model, VectorSpecError
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.utils import from_jsonable, to_jsonable

from .cases import ModelCase, make_data

N_STEPS = 6

FUSABLE: dict[str, dict[str, Any]] = {
    "sgd": {"lrate": 0.1},
    "sgd-w_decay": {"lrate": 0.1, "w_decay": 0.01},
    "sgd-scheduled": {"lrate": ["exponential-decay", {"base": 0.1, "rate": 0.9}]},
    "momentum": {"lrate": 0.1, "modules": [["momentum", {"beta": 0.9}]]},
    "nesterov": {"lrate": 0.1, "modules": [["momentum", {"beta": 0.9, "nesterov": True}]]},
    "adam": {"lrate": 0.01, "modules": [["adam", {"beta_2": 0.999}]]},
    "yogi": {"lrate": 0.01, "modules": [["yogi", {}]]},
    "rmsprop": {"lrate": 0.01, "modules": [["rmsprop", {}]]},
    "adagrad": {"lrate": 0.1, "modules": [["adagrad", {}]]},
    "ewma": {"lrate": 0.1, "modules": [["ewma", {}]]},
    "yogi-momentum": {"lrate": 0.1, "modules": [["yogi-momentum", {}]]},
    "clip-adam": {
        "lrate": 0.01,
        "modules": [["l2-global-clipping", {"max_norm": 0.1}], ["adam", {}]],
    },
    "clip-each-momentum": {
        "lrate": 0.1,
        "modules": [["l2-clipping", {"max_norm": 0.05}], ["momentum", {}]],
        "w_decay": 0.001,
    },
}
EAGER_ONLY: dict[str, dict[str, Any]] = {
    "amsgrad": {"lrate": 0.01, "modules": [["adam", {"amsgrad": True}]]},
    "fedprox": {"lrate": 0.1, "regularizers": [["fedprox", {"alpha": 0.1}]]},
}


def _fused(case: ModelCase) -> bool:
    return case.name != "TorchModel"


def _pair(case: ModelCase, config: dict[str, Any], frozen: bool = False) -> tuple[Any, ...]:
    models = [case.make(frozen=frozen, seed=3) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    return models[0], Optimizer.from_config(config), models[1], Optimizer.from_config(config)


def _batches(n: int = N_STEPS) -> list[tuple[np.ndarray, np.ndarray, None]]:
    x, y = make_data(n_samples=8 * n, seed=1)
    return [(x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8], None) for i in range(n)]


def _numpy(model: Model) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model.get_weights().pack().items()}


def _count_gradient_calls(model: Model) -> list[int]:
    """Make `model.compute_batch_gradients` count its calls (the eager path's marker)."""
    calls = [0]
    method = model.compute_batch_gradients

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return method(*args, **kwargs)

    model.compute_batch_gradients = counted  # type: ignore[method-assign]
    return calls


def _assert_same_training(
    case: ModelCase, config: dict[str, Any], sclip: float | None = None, frozen: bool = False
) -> tuple[Model, Optimizer, Model, Optimizer]:
    fused_model, fused_opt, eager_model, eager_opt = _pair(case, config, frozen)
    calls = _count_gradient_calls(fused_model)
    for batch in _batches():
        fused_opt.run_train_step(fused_model, batch, sclip=sclip)
        eager_opt.apply_gradients(eager_model, eager_model.compute_batch_gradients(batch, sclip))
    got, want = _numpy(fused_model), _numpy(eager_model)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(
        fused_model.collect_training_losses(), eager_model.collect_training_losses(), rtol=1e-5
    )
    got_state, want_state = to_jsonable(fused_opt.get_state()), to_jsonable(eager_opt.get_state())
    _assert_close_nests(got_state, want_state)
    return fused_model, fused_opt, eager_model, calls  # type: ignore[return-value]


def _assert_close_nests(got: Any, want: Any) -> None:
    """Compare JSON-able nests (Vectors as their JSON form), floats to rounding error."""
    got, want = from_jsonable(got), from_jsonable(want)
    if hasattr(want, "pack"):
        got_arrays, want_arrays = got.pack(), want.pack()
        assert got_arrays.keys() == want_arrays.keys()
        for key, value in want_arrays.items():
            np.testing.assert_allclose(got_arrays[key], value, rtol=1e-5, atol=1e-7)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _assert_close_nests(got[key], want[key])
    elif isinstance(want, list | tuple):
        assert len(got) == len(want)
        for one, other in zip(got, want, strict=True):
            _assert_close_nests(one, other)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6)
    else:
        assert got == want


@pytest.mark.parametrize("name", sorted(FUSABLE))
def test_run_train_step_matches_eager_step(case: ModelCase, name: str) -> None:
    *_, calls = _assert_same_training(case, FUSABLE[name])
    if _fused(case):
        assert calls == [0], "run_train_step took the eager path"


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_fused_step_with_samplewise_clipping_matches_eager_step(case: ModelCase, name: str) -> None:
    *_, calls = _assert_same_training(case, FUSABLE[name], sclip=0.5)
    if _fused(case):
        assert calls == [0]


@pytest.mark.parametrize("name", sorted(EAGER_ONLY))
def test_modules_without_formula_take_the_eager_path(case: ModelCase, name: str) -> None:
    *_, calls = _assert_same_training(case, EAGER_ONLY[name])
    assert calls == [N_STEPS]


def test_fused_steps_leave_frozen_weights_bit_identical(case: ModelCase) -> None:
    model, optim, *_ = _pair(case, FUSABLE["adam"], frozen=True)
    trainable = set(model.get_weights(trainable=True).coefs)
    before = _numpy(model)
    for batch in _batches():
        optim.run_train_step(model, batch)
    after = _numpy(model)
    assert trainable and set(after) - trainable
    for name, value in before.items():
        if name in trainable:
            assert not np.array_equal(after[name], value), name
        else:
            assert np.array_equal(after[name], value), name


def test_restored_numpy_states_are_converted_then_fused(case: ModelCase) -> None:
    """Numpy states (e.g. from a checkpoint) run one eager step, then compiled ones, alike."""
    fused_model, fused_opt, eager_model, eager_opt = _pair(case, FUSABLE["adam"])
    batches = _batches()
    for batch in batches[:2]:
        eager_opt.run_train_step(eager_model, batch)
    fused_model.set_weights(eager_model.get_weights())
    state = eager_opt.get_state()
    adam_state = state["modules"][0][1]
    for key in ("momentum", "velocity"):  # as a checkpoint saved as numpy would give them
        adam_state[key] = NumpyVector(adam_state[key].pack())
    fused_opt.set_state(state)
    calls = _count_gradient_calls(fused_model)
    for batch in batches[2:]:
        fused_opt.run_train_step(fused_model, batch)
        eager_opt.apply_gradients(eager_model, eager_model.compute_batch_gradients(batch))
    assert calls == [1 if _fused(case) else len(batches) - 2]
    got, want = _numpy(fused_model), _numpy(eager_model)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_misshaped_restored_state_fails_as_the_eager_step_does(case: ModelCase) -> None:
    model, optim, *_ = _pair(case, FUSABLE["momentum"])
    weights = model.get_weights(trainable=True).pack()
    bad = {k: np.zeros((*v.shape, 2), v.dtype) for k, v in weights.items()}
    velocity = case.vector_type.unpack(bad)
    optim.set_state({**optim.get_state(), "modules": [["momentum", {"velocity": velocity}]]})
    before = _numpy(model)
    with pytest.raises(VectorSpecError, match="specs differ"):
        optim.run_train_step(model, _batches(1)[0])
    after = _numpy(model)
    for name, value in before.items():
        assert np.array_equal(after[name], value), name


@pytest.mark.parametrize("with_global_state", [False, True])
def test_fused_scaffold_client_matches_eager_steps_and_aux_vars(
    case: ModelCase, with_global_state: bool
) -> None:
    """SCAFFOLD's corrected steps and its `c_i` update agree across both paths, over 2 rounds."""
    config = {"lrate": 0.1, "modules": [["scaffold-client", {}], ["momentum", {}]]}
    fused_model, fused_opt, eager_model, eager_opt = _pair(case, config)
    calls = _count_gradient_calls(fused_model)
    weights = fused_model.get_weights(trainable=True).pack()
    rng = np.random.default_rng(5)
    glob = NumpyVector({k: rng.normal(size=v.shape).astype(v.dtype) for k, v in weights.items()})
    batches = _batches()
    for round_batches in (batches[:3], batches[3:]):
        aux = {"scaffold": {"state": glob if with_global_state else 0.0}}
        for optim in (fused_opt, eager_opt):
            optim.process_aux_var(aux)
            optim.start_round()
        for batch in round_batches:
            fused_opt.run_train_step(fused_model, batch)
            eager_opt.apply_gradients(eager_model, eager_model.compute_batch_gradients(batch))
        got, want = fused_opt.collect_aux_var(), eager_opt.collect_aux_var()
        _assert_close_nests(to_jsonable(got), to_jsonable(want))
    got_weights, want_weights = _numpy(fused_model), _numpy(eager_model)
    for name, value in want_weights.items():
        np.testing.assert_allclose(got_weights[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    if _fused(case):  # round 1: the first (eager) step converts the numpy c (round 2: c_i - c
        assert calls == [1 if with_global_state else 0]  # is of the model's type already)
