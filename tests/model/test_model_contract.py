"""Contract of the `Model` API, run over every framework-specific Model (see conftest)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from flwr_declearn.model.api import Model, Vector, VectorSpecError
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import (
    DevicePolicy,
    access_registered,
    build_from_spec,
    get_device_policy,
    set_device_policy,
)

from .cases import N_CLASSES, N_FEATURES, ModelCase, make_data


def snapshot(vector: Vector) -> dict[str, np.ndarray]:
    """Copy a Vector's arrays into numpy."""
    return {key: np.array(val, copy=True) for key, val in vector.pack().items()}


def flat_norm(arrays: dict[str, np.ndarray]) -> float:
    return float(np.sqrt(sum(np.sum(np.square(a.astype("float64"))) for a in arrays.values())))


def eval_loss(model: Model, x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Batch loss through the evaluation API: mean of (weighted) sample-wise losses."""
    y_true, y_pred, _ = model.compute_batch_predictions((x, y, None))
    s_loss = model.loss_function(y_true, y_pred)
    return float(np.mean(s_loss if w is None else s_loss * w))


def sgd_step(model: Model, batch: Any, lrate: float = 0.1, max_norm: float | None = None) -> None:
    grads = model.compute_batch_gradients(batch, max_norm=max_norm)
    model.apply_updates(grads * -lrate)


# -- registry, init and weights ----------------------------------------------------------------


def test_model_class_is_registered_in_model_group(case: ModelCase) -> None:
    model = case.make()
    assert access_registered(case.name, "Model") is type(model)


def test_required_data_info_is_empty_once_initialized(case: ModelCase) -> None:
    model = case.make()
    assert model.required_data_info == set()
    model.initialize({"features_shape": [N_FEATURES], "data_type": "float32"})  # no-op


def test_get_weights_returns_the_model_vector_type(case: ModelCase) -> None:
    model = case.make()
    weights = model.get_weights()
    trainable = model.get_weights(trainable=True)
    assert type(weights) is case.vector_type
    assert type(trainable) is case.vector_type
    assert set(trainable.coefs) == set(weights.coefs)  # nothing frozen: all trainable
    assert sum(int(np.prod(s)) for s in weights.shapes().values()) == (
        N_FEATURES * 8 + 8 + 8 * N_CLASSES + N_CLASSES
    )


@pytest.mark.parametrize("trainable", [False, True])
def test_set_weights_round_trip(case: ModelCase, trainable: bool) -> None:
    model = case.make()
    other = case.make(seed=1)
    source = other.get_weights(trainable=trainable)
    model.set_weights(source, trainable=trainable)
    result = snapshot(model.get_weights(trainable=trainable))
    expected = snapshot(source)
    assert result.keys() == expected.keys()
    for key, val in expected.items():
        np.testing.assert_array_equal(result[key], val)
    x, y = make_data()
    np.testing.assert_allclose(
        model.compute_batch_predictions((x, y, None))[1],
        other.compute_batch_predictions((x, y, None))[1],
        rtol=1e-6,
    )


def test_set_weights_raises_key_error_on_missing_name(case: ModelCase) -> None:
    model = case.make()
    coefs = dict(model.get_weights().coefs)
    missing = sorted(coefs)[0]
    del coefs[missing]
    with pytest.raises(KeyError, match=missing.replace("/", ".")):
        model.set_weights(case.vector_type(coefs))


def test_set_weights_raises_key_error_on_unexpected_name(case: ModelCase) -> None:
    model = case.make()
    coefs = dict(model.get_weights().coefs)
    coefs["unexpected"] = next(iter(coefs.values()))
    with pytest.raises(KeyError, match="unexpected"):
        model.set_weights(case.vector_type(coefs))


def test_set_weights_trainable_only_rejects_frozen_names(case: ModelCase) -> None:
    model = case.make(frozen=True)
    with pytest.raises(KeyError):
        model.set_weights(model.get_weights(), trainable=True)
    with pytest.raises(KeyError):
        model.set_weights(model.get_weights(trainable=True), trainable=False)


def test_set_weights_raises_type_error_on_wrong_vector_type(case: ModelCase) -> None:
    model = case.make()
    as_numpy = NumpyVector(model.get_weights().pack())
    with pytest.raises(TypeError, match=case.vector_type.__name__):
        model.set_weights(as_numpy)


def test_set_weights_rejects_wrong_shapes(case: ModelCase) -> None:
    model = case.make()
    weights = model.get_weights()
    key = next(iter(weights.coefs))
    packed = weights.pack()
    packed[key] = np.zeros((*packed[key].shape, 2), dtype=packed[key].dtype)
    with pytest.raises(VectorSpecError, match=key):
        model.set_weights(case.vector_type.unpack(packed))


def test_get_weights_returns_a_snapshot(case: ModelCase) -> None:
    model = case.make()
    weights = model.get_weights()
    before = snapshot(weights)
    x, y = make_data()
    sgd_step(model, (x, y, None), lrate=1.0)
    after = snapshot(weights)
    for key, val in before.items():
        np.testing.assert_array_equal(after[key], val)
    assert any(not np.array_equal(v, before[k]) for k, v in snapshot(model.get_weights()).items())


def test_apply_updates_adds_updates_to_trainable_weights(case: ModelCase) -> None:
    model = case.make()
    weights = snapshot(model.get_weights(trainable=True))
    rng = np.random.default_rng(0)
    upd = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in weights.items()}
    model.apply_updates(case.vector_type.unpack(upd))
    result = snapshot(model.get_weights(trainable=True))
    for key, val in weights.items():
        np.testing.assert_allclose(result[key], val + upd[key], rtol=1e-6, atol=1e-7)


def test_apply_updates_with_a_scale_adds_scaled_updates(case: ModelCase) -> None:
    """`apply_updates(u, scale)` adds `scale * u` (an optimizer's `-lrate * direction`)."""
    model, twin = case.make(), case.make()
    x, y = make_data()
    grads = model.compute_batch_gradients((x, y, None))
    model.apply_updates(grads, scale=-0.3)  # type: ignore[call-arg]
    twin.apply_updates(grads * -0.3)
    expected = snapshot(twin.get_weights())
    for key, val in snapshot(model.get_weights()).items():
        np.testing.assert_allclose(val, expected[key], rtol=1e-6, atol=1e-7)
    model.apply_updates(grads, scale=-0.3)  # type: ignore[call-arg]
    twin.apply_updates(grads * -0.3)
    np.testing.assert_allclose(  # also through the next gradients computation
        snapshot(model.compute_batch_gradients((x, y, None)))[key],
        snapshot(twin.compute_batch_gradients((x, y, None)))[key],
        rtol=1e-5,
        atol=1e-6,
    )


def test_apply_updates_rejects_wrong_names_and_types(case: ModelCase) -> None:
    model = case.make(frozen=True)
    with pytest.raises(KeyError):
        model.apply_updates(model.get_weights())  # includes frozen weights
    trainable = model.get_weights(trainable=True)
    with pytest.raises(TypeError):
        model.apply_updates(NumpyVector(trainable.pack()))  # type: ignore[arg-type]
    before = snapshot(model.get_weights())
    for key, val in snapshot(model.get_weights()).items():
        np.testing.assert_array_equal(before[key], val)


# -- trainable vs frozen -----------------------------------------------------------------------


def test_frozen_weights_are_excluded_from_trainable_weights_and_gradients(
    case: ModelCase,
) -> None:
    model = case.make(frozen=True)
    every = set(model.get_weights().coefs)
    trainable = set(model.get_weights(trainable=True).coefs)
    assert trainable < every
    assert len(every - trainable) == 2  # the first layer's kernel and bias
    x, y = make_data()
    assert set(model.compute_batch_gradients((x, y, None)).coefs) == trainable
    assert set(model.compute_batch_gradients((x, y, None), max_norm=1.0).coefs) == trainable


def test_frozen_weights_stay_bit_identical_through_training(case: ModelCase) -> None:
    from flwr_declearn.optimizer import Optimizer

    model = case.make(frozen=True)
    trainable = set(model.get_weights(trainable=True).coefs)
    before = snapshot(model.get_weights())
    x, y = make_data(n_samples=32)
    optim = Optimizer(lrate=0.05, modules=["adam"])
    for i in range(4):
        batch = (x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8], None)
        optim.run_train_step(model, batch, sclip=0.5 if i % 2 else None)
    after = snapshot(model.get_weights())
    for key, val in before.items():
        if key in trainable:
            assert not np.array_equal(after[key], val), key
        else:
            np.testing.assert_array_equal(after[key], val)
            assert after[key].dtype == val.dtype


# -- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_gradients_match_finite_differences(case: ModelCase, weighted: bool) -> None:
    model = case.make(dtype="float64")
    x, y = make_data(dtype="float64")
    w = np.linspace(0.5, 2.0, len(x)) if weighted else None
    grads = snapshot(model.compute_batch_gradients((x, y, w)))
    weights = model.get_weights(trainable=True)
    rng = np.random.default_rng(1)
    direction = {k: rng.normal(size=v.shape) for k, v in weights.pack().items()}
    step = 1e-5
    losses = []
    for sign in (1.0, -1.0):
        shift = case.vector_type.unpack({k: sign * step * d for k, d in direction.items()})
        model.set_weights(weights + shift, trainable=True)
        losses.append(eval_loss(model, x, y, w))
    numeric = (losses[0] - losses[1]) / (2 * step)
    analytic = sum(float(np.sum(grads[k] * d)) for k, d in direction.items())
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_sample_weights_weight_the_loss(case: ModelCase) -> None:
    model = case.make(dtype="float64")
    x, y = make_data(dtype="float64")
    half = len(x) // 2
    wght = np.where(np.arange(len(x)) < half, 2.0, 0.0)  # mean(w * l) == mean of first half
    weighted = snapshot(model.compute_batch_gradients((x, y, wght)))
    subset = snapshot(model.compute_batch_gradients((x[:half], y[:half], None)))
    for key, val in subset.items():
        np.testing.assert_allclose(weighted[key], val, rtol=1e-10, atol=1e-12)
    ones = snapshot(model.compute_batch_gradients((x, y, np.ones(len(x)))))
    plain = snapshot(model.compute_batch_gradients((x, y, None)))
    for key, val in plain.items():
        np.testing.assert_allclose(ones[key], val, rtol=1e-10, atol=1e-12)


def test_returned_gradients_are_not_altered_by_later_steps(case: ModelCase) -> None:
    model = case.make()
    x, y = make_data()
    grads = model.compute_batch_gradients((x, y, None))
    before = snapshot(grads)
    sgd_step(model, (x[:4], y[:4], None))
    sgd_step(model, (x, y, None))
    for key, val in snapshot(grads).items():
        np.testing.assert_array_equal(val, before[key])


def _samplewise_gradients(model: Model, x: np.ndarray, y: np.ndarray) -> list[dict]:
    return [
        snapshot(model.compute_batch_gradients((x[i : i + 1], y[i : i + 1], None)))
        for i in range(len(x))
    ]


@pytest.mark.parametrize("weighted", [False, True])
def test_per_sample_clipping_bounds_each_sample_and_averages(
    case: ModelCase, weighted: bool
) -> None:
    model = case.make(dtype="float64")
    x, y = make_data(n_samples=10, dtype="float64")
    x[:3] *= 20.0  # a few large-gradient samples, sure to be clipped
    w = np.linspace(0.5, 1.5, len(x)) if weighted else None
    per_sample = _samplewise_gradients(model, x, y)
    norms = np.array([flat_norm(g) for g in per_sample])
    max_norm = float(np.median(norms))  # about half the samples are clipped
    assert (norms > max_norm * 1.01).sum() >= 3 and (norms < max_norm * 0.99).sum() >= 3
    # Each sample's clipped gradient (a batch of one) is bounded by max_norm.
    clipped = []
    for i in range(len(x)):
        grad = snapshot(model.compute_batch_gradients((x[i : i + 1], y[i : i + 1], None), max_norm))
        assert flat_norm(grad) <= max_norm + 1e-6
        factor = min(1.0, max_norm / norms[i])
        for key, val in per_sample[i].items():
            np.testing.assert_allclose(grad[key], val * factor, rtol=1e-9, atol=1e-12)
        clipped.append(grad)
    # The batch gradient is the (weighted) mean of clipped sample-wise gradients.
    scale = np.ones(len(x)) if w is None else w
    expected = {
        key: sum(scale[i] * clipped[i][key] for i in range(len(x))) / len(x) for key in clipped[0]
    }
    result = snapshot(model.compute_batch_gradients((x, y, w), max_norm=max_norm))
    for key, val in expected.items():
        np.testing.assert_allclose(result[key], val, rtol=1e-9, atol=1e-12)


def test_clipping_with_a_large_max_norm_equals_plain_gradients(case: ModelCase) -> None:
    model = case.make(dtype="float64")
    x, y = make_data(dtype="float64")
    plain = snapshot(model.compute_batch_gradients((x, y, None)))
    clipped = snapshot(model.compute_batch_gradients((x, y, None), max_norm=1e6))
    for key, val in plain.items():
        np.testing.assert_allclose(clipped[key], val, rtol=1e-9, atol=1e-12)
    losses = model.collect_training_losses()
    assert losses[0] == pytest.approx(losses[1], rel=1e-9)


def test_max_norm_must_be_positive(case: ModelCase) -> None:
    model = case.make()
    x, y = make_data()
    with pytest.raises(ValueError, match="max_norm"):
        model.compute_batch_gradients((x, y, None), max_norm=0.0)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_max_norm_must_be_a_positive_number(case: ModelCase, bad: float) -> None:
    model = case.make()
    x, y = make_data()
    before = snapshot(model.get_weights())
    with pytest.raises(ValueError, match="'max_norm' must be positive"):
        model.compute_batch_gradients((x, y, None), max_norm=bad)
    assert model.collect_training_losses() == []
    after = snapshot(model.get_weights())
    assert all(np.array_equal(after[k], v) for k, v in before.items())


# -- predictions and losses --------------------------------------------------------------------


def test_predictions_and_loss_function_shapes(case: ModelCase) -> None:
    model = case.make()
    x, y = make_data(n_samples=7)
    w = np.arange(7, dtype="float32")
    y_true, y_pred, s_wght = model.compute_batch_predictions((x, y, w))
    assert isinstance(y_true, np.ndarray) and isinstance(y_pred, np.ndarray)
    np.testing.assert_array_equal(y_true, y)
    np.testing.assert_array_equal(s_wght, w)
    assert y_pred.shape == (7, N_CLASSES)
    s_loss = model.loss_function(y_true, y_pred)
    assert isinstance(s_loss, np.ndarray) and s_loss.shape == (7,)
    assert np.all(s_loss > 0)
    assert model.compute_batch_predictions((x, y, None))[2] is None


def test_predictions_require_labels(case: ModelCase) -> None:
    model = case.make()
    x, _ = make_data()
    with pytest.raises(TypeError, match="y_true"):
        model.compute_batch_predictions((x, None, None))


def test_collect_training_losses_returns_batch_losses_then_forgets_them(case: ModelCase) -> None:
    model = case.make(dtype="float64")
    x, y = make_data(dtype="float64")
    w = np.linspace(0.5, 1.5, len(x))
    expected = [eval_loss(model, x, y), eval_loss(model, x, y, w), eval_loss(model, x, y)]
    model.compute_batch_gradients((x, y, None))
    model.compute_batch_gradients((x, y, w))
    model.compute_batch_gradients((x, y, None), max_norm=1e-3)
    losses = model.collect_training_losses()
    assert all(isinstance(loss, float) for loss in losses)
    assert losses == pytest.approx(expected, rel=1e-9)
    assert model.collect_training_losses() == []


# -- config ------------------------------------------------------------------------------------


def _json_config(model: Model) -> dict[str, Any]:
    return json.loads(json.dumps(model.get_config()))


def test_config_is_json_and_round_trips(case: ModelCase) -> None:
    model = case.make(frozen=True)
    config = _json_config(model)
    kwargs = {"allow_pickle": True} if case.pickled_config else {}
    rebuilt = type(model).from_config(config, **kwargs)  # type: ignore[call-arg]
    assert rebuilt.required_data_info == set()
    assert set(rebuilt.get_weights().coefs) == set(model.get_weights().coefs)
    assert set(rebuilt.get_weights(trainable=True).coefs) == set(
        model.get_weights(trainable=True).coefs
    )
    rebuilt.set_weights(model.get_weights())
    x, y = make_data()
    np.testing.assert_allclose(
        rebuilt.compute_batch_predictions((x, y, None))[1],
        model.compute_batch_predictions((x, y, None))[1],
        rtol=1e-6,
    )


def test_from_config_refuses_pickle_unless_allowed(case: ModelCase) -> None:
    model = case.make()
    config = _json_config(model)
    if not case.pickled_config:
        assert "pickle" not in json.dumps(config)
        type(model).from_config(config)  # no pickle involved: nothing to allow
        return
    with pytest.raises(ValueError, match="allow_pickle=True"):
        type(model).from_config(config)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        build_from_spec((case.name, config), "Model")


# -- device policy -----------------------------------------------------------------------------


def test_device_policy_follows_the_global_policy_on_cpu(case: ModelCase) -> None:
    model = case.make()
    assert model.device_policy == DevicePolicy(gpu=False, idx=None)
    model.update_device_policy(DevicePolicy(gpu=False, idx=None))
    model.update_device_policy()
    assert model.device_policy == DevicePolicy(gpu=False, idx=None)
    x, y = make_data()
    sgd_step(model, (x, y, None))
    assert len(model.collect_training_losses()) == 1


def _on_gpu(array: Any) -> bool:
    if hasattr(array, "devices"):  # jax
        return all(dev.platform != "cpu" for dev in array.devices())
    return "cpu" not in str(array.device).lower()


@pytest.fixture
def gpu_policy() -> Iterator[None]:
    previous = get_device_policy()
    set_device_policy(gpu=True, idx=None)
    yield
    set_device_policy(gpu=previous.gpu, idx=previous.idx)


@pytest.mark.gpu
def test_gpu_policy_keeps_weights_batches_and_gradients_on_gpu(
    case: ModelCase, gpu_policy: None
) -> None:
    if not case.has_gpu():
        pytest.skip(f"no GPU visible to {case.package}")
    from flwr_declearn.optimizer import Optimizer

    model = case.make()
    assert model.device_policy.gpu
    x, y = make_data(n_samples=32)
    optim = Optimizer(lrate=0.05, modules=["adam"])
    for i in range(4):
        grads = model.compute_batch_gradients((x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8], None))
        assert all(_on_gpu(g) for g in grads.coefs.values())
        optim.apply_gradients(model, grads)
    optim.run_train_step(model, (x, y, None), sclip=1.0)
    assert all(_on_gpu(w) for w in model.get_weights().coefs.values())
    assert len(model.collect_training_losses()) == 5
    model.update_device_policy(DevicePolicy(gpu=False, idx=None))
    assert model.device_policy == DevicePolicy(gpu=False, idx=None)
    assert not any(_on_gpu(w) for w in model.get_weights().coefs.values())
    sgd_step(model, (x, y, None))
