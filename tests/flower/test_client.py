"""DeclearnClient trains as the server's config says; its Optimizer state lives in the Context."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from flwr.app import Context
from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.flower import STATE_KEY, DeclearnClient, TrainingConfig, wire
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, _roundtrip_context, make_context, regression_data


def fit_config(optimizer: Optimizer, aux: dict[str, Any] | None = None, **train: Any) -> dict:
    config: dict[str, Any] = {
        wire.KEY_ROUND: 1,
        wire.KEY_OPTIMIZER: wire.encode(optimizer.get_config()),
        wire.KEY_TRAIN_CONFIG: wire.encode(TrainingConfig(**{"shuffle": False, **train}).to_dict()),
    }
    if aux is not None:
        config[wire.KEY_AUX_VAR] = wire.encode(aux)
    return config


def weights_of(model: LinearModel) -> list[np.ndarray]:
    return wire.vector_to_ndarrays(model.get_weights())


def manual_round(
    model: LinearModel,
    optimizer: Optimizer,
    data: InMemoryDataset,
    start: list[np.ndarray],
    batch_size: int,
    n_steps: int,
    aux: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Reference: one round with a persistent Optimizer object, no Flower."""
    model.set_weights(
        NumpyVector(dict(zip(wire.weight_names(model.get_weights()), start, strict=True)))
    )
    if aux is not None:
        optimizer.process_aux_var(aux)
    optimizer.start_round()
    steps = 0
    while steps < n_steps:
        for batch in data.generate_batches(batch_size, shuffle=False, drop_remainder=False):
            optimizer.run_train_step(model, batch)
            steps += 1
            if steps == n_steps:
                break
    return optimizer.collect_aux_var()


@pytest.fixture
def data() -> InMemoryDataset:
    return regression_data(40, seed=0)


def test_fit_runs_the_requested_steps_and_reports_examples_and_loss(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    start = weights_of(LinearModel(3))
    new, n_examples, metrics = client.fit(
        start, fit_config(Optimizer(0.05), batch_size=8, n_steps=7)
    )
    assert n_examples == 40
    assert metrics["n_steps"] == 7
    assert isinstance(metrics["train_loss"], float) and metrics["train_loss"] > 0
    assert wire.KEY_AUX_VAR not in metrics  # plain SGD emits no aux-vars
    reference = LinearModel(3)
    manual_round(reference, Optimizer(0.05), regression_data(40, seed=0), start, 8, 7)
    for got, exp in zip(new, weights_of(reference), strict=True):
        np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize(
    ("train", "steps"),
    [
        ({"batch_size": 8}, 5),  # default: one epoch
        ({"batch_size": 8, "n_epochs": 3}, 15),
        ({"batch_size": 16, "n_epochs": 2}, 6),  # last partial batch kept
        ({"batch_size": 16, "n_epochs": 2, "drop_remainder": True}, 4),
        ({"batch_size": 8, "n_epochs": 3, "n_steps": 11}, 11),  # first limit reached wins
        ({"batch_size": 8, "n_epochs": 1, "n_steps": 11}, 5),
        ({"batch_size": 8, "n_steps": 12}, 12),  # steps cycle over epochs
    ],
)
def test_training_effort_follows_epochs_and_steps(
    data: InMemoryDataset, train: dict[str, Any], steps: int
) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    _, _, metrics = client.fit(weights_of(LinearModel(3)), fit_config(Optimizer(0.01), **train))
    assert metrics["n_steps"] == steps


def test_an_epoch_without_any_batch_stops_training_with_a_warning(
    data: InMemoryDataset, caplog: pytest.LogCaptureFixture
) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    config = fit_config(Optimizer(0.01), batch_size=64, n_steps=5, drop_remainder=True)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        _, _, metrics = client.fit(weights_of(LinearModel(3)), config)
    assert metrics["n_steps"] == 0
    assert "yielded no batch" in caplog.text


def test_fit_without_optimizer_config_needs_a_fallback(data: InMemoryDataset) -> None:
    start = weights_of(LinearModel(3))
    with pytest.raises(ValueError, match=r"no 'declearn\.optimizer' entry"):
        DeclearnClient(LinearModel(3), data, make_context(1)).fit(start, {})
    client = DeclearnClient(
        LinearModel(3),
        data,
        make_context(1),
        optimizer=Optimizer(0.05),
        train_config={"batch_size": 8},
    )
    new, _, metrics = client.fit(start, {})  # e.g. under Flower's plain FedAvg
    assert metrics["n_steps"] == 5
    assert not all(np.array_equal(a, b) for a, b in zip(new, start, strict=True))


def test_server_configs_override_the_fallbacks(data: InMemoryDataset) -> None:
    client = DeclearnClient(
        LinearModel(3),
        data,
        make_context(1),
        optimizer=Optimizer(10.0),
        train_config={"n_steps": 1},
    )
    _, _, metrics = client.fit(weights_of(LinearModel(3)), fit_config(Optimizer(0.01), n_steps=3))
    assert metrics["n_steps"] == 3
    assert np.isfinite(metrics["train_loss"])


def test_weights_not_matching_the_model_are_rejected(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    bad = [np.zeros(1), np.zeros((4, 1))]
    with pytest.raises(ValueError, match=r"'kernel': expected float64\[3, 1\], received"):
        client.fit(bad, fit_config(Optimizer(0.01)))


def test_invalid_payloads_in_the_config_are_rejected(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    start = weights_of(LinearModel(3))
    config = fit_config(Optimizer(0.01))
    with pytest.raises(ValueError, match="must be bytes, not str"):
        client.fit(start, {**config, wire.KEY_OPTIMIZER: "{}"})
    with pytest.raises(ValueError, match="not a valid flwr_declearn message"):
        client.fit(start, {**config, wire.KEY_TRAIN_CONFIG: b"\xff\xff"})
    with pytest.raises(ValueError, match="Unknown TrainingConfig field"):
        client.fit(start, {**config, wire.KEY_TRAIN_CONFIG: wire.encode({"epochs": 2})})


def test_uninitialized_models_are_initialized_from_the_training_data(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(), data, make_context(1))
    assert client.specs == {"bias": ((1,), "float64"), "kernel": ((3, 1), "float64")}


def _two_rounds_with_rebuilt_clients(
    optim: Optimizer, data: InMemoryDataset, starts: list[list[np.ndarray]], aux: list[Any]
) -> tuple[list[list[np.ndarray]], list[dict], Context]:
    context = make_context(7)
    outputs, metrics = [], []
    for start, server_aux in zip(starts, aux, strict=True):
        context = _roundtrip_context(context)  # what a SuperNode keeps between messages
        client = DeclearnClient(LinearModel(3), data, context)  # rebuilt for every message
        new, _, met = client.fit(start, fit_config(optim, server_aux, batch_size=8, n_steps=6))
        outputs.append(new)
        metrics.append(met)
    return outputs, metrics, context


def test_optimizer_state_survives_rounds_through_the_context(data: InMemoryDataset) -> None:
    optim = Optimizer(0.05, modules=[("momentum", {"beta": 0.9})])
    starts = [weights_of(LinearModel(3)), [np.full(1, 0.2), np.full((3, 1), 0.5)]]
    outputs, _, context = _two_rounds_with_rebuilt_clients(optim, data, starts, [None, None])
    assert STATE_KEY in context.state
    reference_optim = Optimizer.from_config(optim.get_config())
    reference = LinearModel(3)
    for start, out in zip(starts, outputs, strict=True):
        manual_round(reference, reference_optim, regression_data(40, seed=0), start, 8, 6)
        for got, exp in zip(out, weights_of(reference), strict=True):
            np.testing.assert_array_equal(got, exp)
    # Without the stored state the second round would differ (momentum restarts).
    fresh = DeclearnClient(LinearModel(3), regression_data(40, seed=0), make_context(8))
    alone, _, _ = fresh.fit(starts[1], fit_config(optim, batch_size=8, n_steps=6))
    assert not np.allclose(alone[1], outputs[1][1])


def test_scaffold_client_state_persists_and_aux_vars_travel_both_ways(
    data: InMemoryDataset,
) -> None:
    optim = Optimizer(0.05, modules=["scaffold-client"])
    server_state = NumpyVector({"bias": np.full(1, 0.1), "kernel": np.full((3, 1), -0.2)})
    aux = [{"scaffold": {"state": 0.0}}, {"scaffold": {"state": server_state}}]
    starts = [weights_of(LinearModel(3)), [np.full(1, 0.2), np.full((3, 1), 0.5)]]
    outputs, metrics, context = _two_rounds_with_rebuilt_clients(optim, data, starts, aux)
    reference_optim = Optimizer.from_config(optim.get_config())
    reference = LinearModel(3)
    for start, server_aux, out, met in zip(starts, aux, outputs, metrics, strict=True):
        expected_aux = manual_round(
            reference, reference_optim, regression_data(40, seed=0), start, 8, 6, server_aux
        )
        for got, exp in zip(out, weights_of(reference), strict=True):
            np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12)
        sent = wire.decode(met[wire.KEY_AUX_VAR])
        assert set(sent) == {"scaffold"}
        delta, exp_delta = sent["scaffold"]["delta"], expected_aux["scaffold"]["delta"]
        for name in ("bias", "kernel"):
            np.testing.assert_allclose(delta.coefs[name], exp_delta.coefs[name], atol=1e-12)
    saved = wire.decode(context.state[STATE_KEY]["optimizer_state"])
    c_i = saved["modules"][0][1]["state"]
    assert isinstance(c_i, NumpyVector)  # the client's own control variate, c_i
    np.testing.assert_allclose(
        c_i.coefs["kernel"], reference_optim.modules[0].state.coefs["kernel"]
    )


def test_changed_optimizer_structure_restarts_from_a_fresh_state(
    data: InMemoryDataset, caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context(3)
    start = weights_of(LinearModel(3))
    DeclearnClient(LinearModel(3), data, context).fit(
        start, fit_config(Optimizer(0.05, modules=["momentum"]), n_steps=2)
    )
    with caplog.at_level(logging.WARNING, logger="flwr"):
        DeclearnClient(LinearModel(3), data, context).fit(
            start, fit_config(Optimizer(0.05, modules=["adam"]), n_steps=2)
        )
    assert "fresh Optimizer state" in caplog.text


def test_evaluate_reports_the_mean_loss_on_validation_data(data: InMemoryDataset) -> None:
    valid = regression_data(25, seed=5)
    client = DeclearnClient(LinearModel(3), data, make_context(1), valid_data=valid)
    weights = [np.array([0.3]), np.array([[1.5], [-2.0], [0.5]])]
    loss, n_samples, metrics = client.evaluate(weights, {})
    assert n_samples == 25
    preds = valid.data @ weights[1][:, 0] + 0.3
    assert loss == pytest.approx(np.mean((preds - valid.target) ** 2), rel=1e-12)
    assert metrics == {"loss": loss}  # no accuracy for a regression target


def test_evaluate_reports_accuracy_for_class_labels_and_custom_metrics() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(30, 3))
    labels = (inputs[:, 0] > 0).astype(np.int64)
    data = InMemoryDataset(inputs, labels)
    weights = [np.array([0.5]), np.array([[1.0], [0.0], [0.0]])]  # score > 0.5 <=> x0 > 0
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    _, _, metrics = client.evaluate(weights, {})
    assert metrics["accuracy"] == pytest.approx(np.mean((inputs[:, 0] > 0) == labels))
    custom = DeclearnClient(LinearModel(3), data, make_context(1), metrics=["mae"])
    _, _, metrics = custom.evaluate(weights, {wire.KEY_EVAL_CONFIG: wire.encode({"batch_size": 7})})
    assert set(metrics) == {"loss", "mae"}


def test_fit_round_trips_through_flowers_numpy_client_wrapper(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1)).to_client()
    params = ndarrays_to_parameters(weights_of(LinearModel(3)))
    res = client.fit(FitIns(params, fit_config(Optimizer(0.05), n_steps=3)))
    assert res.num_examples == 40 and res.metrics["n_steps"] == 3
    assert [a.shape for a in parameters_to_ndarrays(res.parameters)] == [(1,), (3, 1)]


def test_configs_referenced_by_id_are_read_from_the_context(data: InMemoryDataset) -> None:
    context = make_context(4)
    start = weights_of(LinearModel(3))
    full = {**fit_config(Optimizer(0.05), n_steps=3), wire.KEY_CONFIG_ID: b"id-1"}
    _, _, first = DeclearnClient(LinearModel(3), data, context).fit(start, full)
    by_id = {wire.KEY_CONFIG_ID: b"id-1"}
    _, _, second = DeclearnClient(LinearModel(3), data, _roundtrip_context(context)).fit(
        start, by_id
    )
    assert first["n_steps"] == second["n_steps"] == 3
    with pytest.raises(ValueError, match=r"does not hold \(id 69642d32\)"):
        DeclearnClient(LinearModel(3), data, context).fit(start, {wire.KEY_CONFIG_ID: b"id-2"})
    with pytest.raises(ValueError, match="does not hold"):
        DeclearnClient(LinearModel(3), data, make_context(5)).fit(start, by_id)
