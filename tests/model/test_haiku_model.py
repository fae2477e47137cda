"""HaikuModel specifics: trainable-weights selection, PRNG, jit caching, deferred updates."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("haiku")
pytest.importorskip("optax")

import haiku as hk
import jax
import jax.numpy as jnp

from flwr_declearn.model.haiku import HaikuModel, JaxNumpyVector
from flwr_declearn.model.haiku import _model as haiku_model

from .cases import HaikuMLP, haiku_xent, make_data

INFO = {"features_shape": [6], "data_type": "float32"}


def initialized(seed: int = 0) -> HaikuModel:
    model = HaikuModel(HaikuMLP(8, 3), haiku_xent, seed=seed)
    model.initialize(INFO)
    return model


def dropout_mlp(inputs: Any) -> Any:
    """MLP with dropout: its outputs depend on the PRNG key."""
    hidden = jax.nn.relu(hk.Linear(16)(inputs))
    return hk.Linear(3)(hk.dropout(hk.next_rng_key(), 0.5, hidden))


def test_initialize_needs_shape_and_dtype_and_names_weights() -> None:
    model = HaikuModel(HaikuMLP(8, 3), haiku_xent, seed=0)
    assert model.required_data_info == {"features_shape", "data_type"}
    with pytest.raises(RuntimeError, match="initialize"):
        model.get_weights()
    with pytest.raises(KeyError, match="data_type"):
        model.initialize({"features_shape": [6]})
    model.initialize(INFO)
    assert model.required_data_info == set()
    names = ["hidden:b", "hidden:w", "output:b", "output:w"]
    assert model.get_weight_names() == names
    assert model.get_weight_names(trainable=True) == names


@pytest.mark.parametrize(
    "criterion",
    [
        ["output:w", "output:b"],
        lambda layer, name, value: layer == "output",
        {"output": {"w": None, "b": None}},
    ],
    ids=["names", "callable", "dict"],
)
def test_set_trainable_weights_accepts_names_callables_and_dicts(criterion: Any) -> None:
    model = initialized()
    model.set_trainable_weights(criterion)
    assert model.get_weight_names(trainable=True) == ["output:b", "output:w"]
    assert model.get_weight_names() == ["hidden:b", "hidden:w", "output:b", "output:w"]
    x, y = make_data()
    assert set(model.compute_batch_gradients((x, y, None)).coefs) == {"output:b", "output:w"}


def test_set_trainable_weights_rejects_bad_criteria() -> None:
    with pytest.raises(RuntimeError, match="initialize"):
        HaikuModel(HaikuMLP(8, 3), haiku_xent).set_trainable_weights(["output:w"])
    model = initialized()
    with pytest.raises(KeyError, match="nope:w"):
        model.set_trainable_weights(["output:w", "nope:w"])
    with pytest.raises(TypeError):
        model.set_trainable_weights({"output": ["w"]})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        model.set_trainable_weights(42)  # type: ignore[arg-type]
    assert len(model.get_weight_names(trainable=True)) == 4  # unchanged


def test_seed_makes_initial_weights_and_random_draws_reproducible() -> None:
    assert initialized(seed=3).get_weights() == initialized(seed=3).get_weights()
    assert initialized(seed=3).get_weights() != initialized(seed=4).get_weights()
    x, y = make_data()
    models = []
    for _ in range(2):
        model = HaikuModel(dropout_mlp, haiku_xent, seed=7)
        model.initialize(INFO)
        models.append(model)
    first = [models[0].compute_batch_gradients((x, y, None)) for _ in range(3)]
    second = [models[1].compute_batch_gradients((x, y, None)) for _ in range(3)]
    assert first == second  # same seed: same sequence of dropout masks
    assert first[0] != first[1]  # a fresh key at each step


def test_unseeded_models_draw_different_seeds() -> None:
    seeds = {HaikuModel(HaikuMLP(8, 3), haiku_xent).get_config()["seed"] for _ in range(5)}
    assert len(seeds) > 1


def test_models_from_equal_functions_share_compiled_code() -> None:
    x, y = make_data(n_samples=5)
    initialized().compute_batch_gradients((x, y, None))
    size = haiku_model._grads_and_loss._cache_size()
    for seed in range(3):
        model = initialized(seed)
        model.compute_batch_gradients((x, y, None))
        model.apply_updates(model.compute_batch_gradients((x, y, None)) * -0.1)
        model.compute_batch_gradients((x, y, None))
    # Two traces at most: without and with fused pending updates.
    assert haiku_model._grads_and_loss._cache_size() <= size + 1


def test_deferred_updates_are_visible_to_every_reader() -> None:
    model, twin = initialized(), initialized()
    x, y = make_data()
    upd = model.compute_batch_gradients((x, y, None)) * -0.5
    model.apply_updates(upd)
    model.apply_updates(upd)  # two pending updates in a row
    expected = twin.get_weights(trainable=True) + upd + upd
    assert model.get_weights(trainable=True) == expected
    model.apply_updates(upd)
    twin.set_weights(expected + upd, trainable=True)
    # The gradients fused with the pending update equal those at the updated weights.
    grads = model.compute_batch_gradients((x, y, None))
    ref = twin.compute_batch_gradients((x, y, None))
    for key, val in ref.coefs.items():
        np.testing.assert_allclose(grads.coefs[key], val, rtol=1e-6, atol=1e-7)
    assert model.get_weights() == twin.get_weights()
    model.apply_updates(upd)
    twin.set_weights(twin.get_weights(trainable=True) + upd, trainable=True)
    np.testing.assert_array_equal(
        model.compute_batch_predictions((x, y, None))[1],
        twin.compute_batch_predictions((x, y, None))[1],
    )
    model.apply_updates(upd)
    model.set_weights(twin.get_weights())  # replaces the pending update
    assert model.get_weights() == twin.get_weights()


def test_apply_updates_keeps_weight_dtypes() -> None:
    model = initialized()
    upd = {k: np.ones(v.shape, dtype="float64") for k, v in model.get_weights().pack().items()}
    model.apply_updates(JaxNumpyVector.unpack(upd))
    assert set(model.get_weights().dtypes().values()) == {"float32"}


def test_weights_live_on_the_policy_device() -> None:
    model = initialized()
    device = jax.devices("cpu")[0]
    for arr in model.get_weights().coefs.values():
        assert arr.devices() == {device}


def test_config_keeps_seed_trainable_weights_and_refuses_lambdas() -> None:
    model = initialized(seed=5)
    model.set_trainable_weights(["output:w"])
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = HaikuModel.from_config(config, allow_pickle=True)
    assert rebuilt.get_weight_names(trainable=True) == ["output:w"]
    assert rebuilt.get_weights() == model.get_weights()  # same seed, same initial weights
    with pytest.raises(TypeError, match="module level"):
        HaikuModel(lambda x: hk.Linear(2)(x), haiku_xent).get_config()


def test_loss_function_averages_extra_axes() -> None:
    def sq_err(y_pred: jax.Array, y_true: jax.Array) -> jax.Array:
        return jnp.square(y_pred - y_true)  # (batch, outputs)

    model = HaikuModel(HaikuMLP(8, 3), sq_err, seed=0)
    model.initialize(INFO)
    x = np.ones((4, 6), dtype="float32")
    y = np.zeros((4, 3), dtype="float32")
    y_true, y_pred, _ = model.compute_batch_predictions((x, y, None))
    np.testing.assert_allclose(model.loss_function(y_true, y_pred), (y_pred**2).mean(axis=1))
