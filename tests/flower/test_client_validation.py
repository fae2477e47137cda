"""DeclearnClient trusts nothing the server sends: one clear error, and context.state unchanged."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import serde
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.flower import (
    STATE_KEY,
    DeclearnClient,
    RejectedMessage,
    handle_evaluate,
    handle_train,
    wire,
)
from flwr_declearn.flower._records import arrays_to_record
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, _roundtrip_context, make_context, regression_data

SCAFFOLD_MOMENTUM = Optimizer(0.05, modules=["scaffold-client", ("momentum", {"beta": 0.9})])


def fit_config(
    optim: dict[str, Any] | None = None, aux: Any = None, **train: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        wire.KEY_ROUND: 2,
        wire.KEY_OPTIMIZER: wire.encode(optim or SCAFFOLD_MOMENTUM.get_config()),
        wire.KEY_TRAIN_CONFIG: wire.encode({"batch_size": 8, "n_steps": 4, **train}),
    }
    if aux is not None:
        config[wire.KEY_AUX_VAR] = wire.encode(aux)
    return config


def start_weights() -> list[np.ndarray]:
    return [np.full(1, 0.1), np.full((3, 1), 0.2)]


def server_state(**overrides: np.ndarray) -> NumpyVector:
    coefs = {"bias": np.full(1, 0.05), "kernel": np.full((3, 1), -0.1), **overrides}
    return NumpyVector(coefs)


def state_bytes(context: Context) -> bytes:
    return serde.recorddict_to_proto(context.state).SerializeToString(deterministic=True)


@pytest.fixture
def data() -> InMemoryDataset:
    return regression_data(40, seed=0)


@pytest.fixture
def trained_context(data: InMemoryDataset) -> Context:
    """A node Context after one good SCAFFOLD + momentum round."""
    context = make_context(1)
    aux = {"scaffold": {"state": server_state()}}
    DeclearnClient(LinearModel(3), data, context).fit(start_weights(), fit_config(aux=aux))
    return _roundtrip_context(context)


def nan_lrate() -> dict[str, Any]:
    return {**SCAFFOLD_MOMENTUM.get_config(), "lrate": math.nan}


def with_config(**changes: Any) -> dict[str, Any]:
    return {**SCAFFOLD_MOMENTUM.get_config(), **changes}


GOOD_AUX = {"scaffold": {"state": server_state()}}

BAD_FITS: dict[str, tuple[list[np.ndarray], dict[str, Any], str]] = {
    "nan learning rate": (start_weights(), fit_config(nan_lrate(), GOOD_AUX), r"\['lrate'\]"),
    "inf learning rate": (
        start_weights(),
        fit_config(with_config(lrate=math.inf), GOOD_AUX),
        "non-finite",
    ),
    "-inf weight decay": (
        start_weights(),
        fit_config(with_config(w_decay=-math.inf), GOOD_AUX),
        r"\['w_decay'\]",
    ),
    "nan scheduler parameter": (
        start_weights(),
        fit_config(with_config(lrate=["cosine-decay", {"base": math.nan, "decay_steps": 10}])),
        "non-finite",
    ),
    "nan module hyper-parameter": (
        start_weights(),
        fit_config(with_config(modules=["scaffold-client", ["adam", {"epsilon": math.inf}]])),
        "non-finite",
    ),
    "inf per-sample clipping": (start_weights(), fit_config(aux=GOOD_AUX, sclip=math.inf), "sclip"),
    "nan per-sample clipping": (start_weights(), fit_config(aux=GOOD_AUX, sclip=math.nan), "sclip"),
    "10**12 steps": (start_weights(), fit_config(aux=GOOD_AUX, n_steps=10**12), "max_steps"),
    "10**9 epochs": (
        start_weights(),
        fit_config(aux=GOOD_AUX, n_steps=None, n_epochs=10**9),
        "max_steps",
    ),
    "nan in the scaffold state": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": server_state(bias=np.full(1, np.nan))}}),
        r"aux-var 'scaffold'\['state'\].*non-finite.*\['bias'\]",
    ),
    "inf in the scaffold state": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": server_state(kernel=np.full((3, 1), -np.inf))}}),
        "non-finite",
    ),
    "wrong-shaped scaffold state": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": server_state(kernel=np.zeros((4, 1)))}}),
        r"does not match the trainable weights.*'kernel'",
    ),
    "float32 scaffold state": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": server_state(bias=np.zeros(1, np.float32))}}),
        r"'bias': float64\[1\] vs float32\[1\]",
    ),
    "misnamed scaffold state": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": NumpyVector({"bias": np.zeros(1)})}}),
        r"missing from the other vector: \['kernel'\]",
    ),
    "scaffold state of the wrong type": (
        start_weights(),
        fit_config(aux={"scaffold": {"state": "c"}}),
        "must be a Vector",
    ),
    "aux-vars not a dict of dicts": (
        start_weights(),
        fit_config(aux={"scaffold": [1.0]}),
        "must be a dict",
    ),
    "aux-vars for an unknown module": (
        start_weights(),
        fit_config(aux={"fedprox": {"state": 0.0}}),
        "unknown aux_name",
    ),
    "undecodable aux-vars": (
        start_weights(),
        {**fit_config(), wire.KEY_AUX_VAR: b"\x00garbage"},
        "not a valid flwr_declearn message",
    ),
    "nan global weights": (
        [np.full(1, np.nan), np.full((3, 1), 0.2)],
        fit_config(aux=GOOD_AUX),
        r"'bias' holds non-finite",
    ),
    "inf global weights": (
        [np.full(1, 0.1), np.full((3, 1), np.inf)],
        fit_config(aux=GOOD_AUX),
        r"'kernel' holds non-finite",
    ),
    "wrong-shaped global weights": (
        [np.full(1, 0.1), np.full((3, 2), 0.2)],
        fit_config(aux=GOOD_AUX),
        r"'kernel': expected float64\[3, 1\]",
    ),
    "float32 global weights": (
        [np.full(1, 0.1, np.float32), np.full((3, 1), 0.2)],
        fit_config(aux=GOOD_AUX),
        r"'bias': expected float64\[1\], received float32\[1\]",
    ),
    "unknown optimizer key": (
        start_weights(),
        fit_config(with_config(lr=0.1)),
        "Unknown Optimizer",
    ),
    "non-dict optimizer config": (
        start_weights(),
        {**fit_config(), wire.KEY_OPTIMIZER: wire.encode([0.1])},
        "must encode a dict",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_a_bad_server_message_is_rejected_and_leaves_the_context_unchanged(
    case: str, data: InMemoryDataset, trained_context: Context
) -> None:
    weights, config, match = BAD_FITS[case]
    before = state_bytes(trained_context)
    client = DeclearnClient(LinearModel(3), data, trained_context)
    started = time.monotonic()
    with pytest.raises(RejectedMessage, match=match):
        client.fit(weights, config)
    assert time.monotonic() - started < 5.0
    assert state_bytes(trained_context) == before


def test_a_round_that_diverges_stores_nothing(
    data: InMemoryDataset, trained_context: Context
) -> None:
    before = state_bytes(trained_context)
    client = DeclearnClient(LinearModel(3), data, trained_context)
    huge = fit_config(with_config(lrate=1e300), GOOD_AUX)
    with pytest.raises(ValueError, match=r"non-finite weights.*nothing was stored"):
        client.fit(start_weights(), huge)
    assert state_bytes(trained_context) == before
    # The same client then trains normally from the intact state.
    _, _, metrics = client.fit(start_weights(), fit_config(aux=GOOD_AUX))
    assert metrics["n_steps"] == 4


def test_a_non_finite_state_saved_earlier_is_dropped_with_a_warning(
    data: InMemoryDataset, trained_context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    record = trained_context.state[STATE_KEY]
    assert isinstance(record, ConfigRecord)
    state = wire.decode(record["optimizer_state"])
    state["modules"][0][1]["state"] = server_state(bias=np.full(1, np.nan))
    record["optimizer_state"] = wire.encode(state)
    client = DeclearnClient(LinearModel(3), data, trained_context)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        client.fit(start_weights(), fit_config(aux=GOOD_AUX))
    assert "non-finite values; starting from a fresh Optimizer state" in caplog.text
    saved = wire.decode(trained_context.state[STATE_KEY]["optimizer_state"])  # type: ignore[index]
    assert np.isfinite(saved["modules"][0][1]["state"].coefs["bias"]).all()


def test_max_steps_is_configurable_and_max_seconds_stops_training(
    data: InMemoryDataset, caplog: pytest.LogCaptureFixture
) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(2), max_steps=3)
    with pytest.raises(RejectedMessage, match=r"asks for 4 steps.*max_steps=3"):
        client.fit(start_weights(), fit_config())
    slow = DeclearnClient(LinearModel(3), data, make_context(2), max_seconds=0.2)
    original = slow.model.compute_batch_gradients

    def sleepy(batch: Any, max_norm: float | None = None) -> NumpyVector:
        time.sleep(0.05)
        return original(batch, max_norm)

    slow.model.compute_batch_gradients = sleepy  # type: ignore[method-assign]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="flwr"):
        _, _, metrics = slow.fit(start_weights(), fit_config(n_steps=10**5))
    assert time.monotonic() - started < 2.0
    assert 1 <= int(metrics["n_steps"]) < 10
    assert "reached max_seconds=0.2" in caplog.text


def test_huge_finite_aux_vars_are_rejected_above_max_aux_norm(
    data: InMemoryDataset, trained_context: Context
) -> None:
    before = state_bytes(trained_context)
    huge = {"scaffold": {"state": server_state(kernel=np.full((3, 1), 1e30))}}
    client = DeclearnClient(LinearModel(3), data, trained_context, max_aux_norm=1e3)
    with pytest.raises(
        RejectedMessage, match=r"'scaffold'\['state'\] has an L2 norm of 1.732e\+30"
    ):
        client.fit(start_weights(), fit_config(aux=huge))
    assert state_bytes(trained_context) == before
    client.fit(start_weights(), fit_config(aux=GOOD_AUX))  # a normal one passes


def test_evaluation_rejects_non_finite_weights_and_bad_configs(data: InMemoryDataset) -> None:
    client = DeclearnClient(LinearModel(3), data, make_context(1))
    with pytest.raises(RejectedMessage, match="'kernel' holds non-finite"):
        client.evaluate([np.zeros(1), np.full((3, 1), np.nan)], {})
    with pytest.raises(RejectedMessage, match="batch_size"):
        client.evaluate(start_weights(), {wire.KEY_EVAL_CONFIG: wire.encode({"batch_size": 0})})


def _train_message(arrays: dict[str, np.ndarray], config: dict[str, Any]) -> Message:
    content = RecordDict(
        {"arrays": arrays_to_record(arrays), "config": ConfigRecord(config)}  # type: ignore[arg-type]
    )
    return Message(content, dst_node_id=1, message_type="train")


def test_message_api_requests_are_checked_the_same_way(
    data: InMemoryDataset, trained_context: Context
) -> None:
    before = state_bytes(trained_context)
    client = DeclearnClient(LinearModel(3), data, trained_context)
    numbered = _train_message({"0": np.zeros(1), "1": np.zeros((3, 1))}, fit_config(aux=GOOD_AUX))
    with pytest.raises(RejectedMessage, match=r"missing \['bias', 'kernel'\], unexpected \['0'"):
        handle_train(client, numbered, trained_context)
    nan = _train_message(
        {"bias": np.zeros(1), "kernel": np.full((3, 1), np.nan)}, fit_config(aux=GOOD_AUX)
    )
    with pytest.raises(RejectedMessage, match="'kernel' holds non-finite"):
        handle_train(client, nan, trained_context)
    evaluate = Message(
        RecordDict({"arrays": ArrayRecord({})}), dst_node_id=1, message_type="evaluate"
    )
    with pytest.raises(RejectedMessage, match="missing"):
        handle_evaluate(client, evaluate, trained_context)
    assert state_bytes(trained_context) == before


def test_unknown_config_keys_are_warned_about_once(
    data: InMemoryDataset, caplog: pytest.LogCaptureFixture
) -> None:
    config = {**fit_config(), "local-epochs-typo": 3, "server-round": 1}
    with caplog.at_level(logging.WARNING, logger="flwr"):
        DeclearnClient(LinearModel(3), data, make_context(1)).fit(start_weights(), config)
        DeclearnClient(LinearModel(3), data, make_context(1)).fit(start_weights(), config)
    assert caplog.text.count("['local-epochs-typo'] are not flwr_declearn's") == 1
    caplog.clear()
    own = {**fit_config(), "my-key": 1}
    with caplog.at_level(logging.WARNING, logger="flwr"):
        DeclearnClient(LinearModel(3), data, make_context(1), config_keys=["my-key"]).fit(
            start_weights(), own
        )
    assert "not flwr_declearn's" not in caplog.text


def test_a_user_train_function_can_wrap_handle_train(data: InMemoryDataset) -> None:
    context = make_context(1)
    message = _train_message(
        dict(zip(["bias", "kernel"], start_weights(), strict=True)), fit_config(aux=GOOD_AUX)
    )

    def my_train(message: Message, context: Context) -> Message:  # a user's @app.train()
        client = DeclearnClient(LinearModel(3), (data.data, data.target), context)
        reply = handle_train(client, message, context)
        reply.content["metrics"]["my-metric"] = 1.5
        return reply

    reply = my_train(message, context)
    assert reply.content["metrics"]["my-metric"] == 1.5
    assert reply.content["metrics"]["n_steps"] == 4
    assert STATE_KEY in context.state


# -- fuzzing -----------------------------------------------------------------------------------

_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
_FINITE = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@st.composite
def server_messages(draw: st.DrawFn) -> tuple[list[np.ndarray], dict[str, Any]]:
    """A SCAFFOLD train message whose weights, rates and aux-vars may be corrupted."""
    weights = start_weights()
    if draw(st.booleans()):
        weights[draw(st.integers(0, 1))].flat[0] = draw(_FLOATS)
    lrate = draw(st.one_of(_FLOATS, st.floats(0.001, 0.1)))
    beta = draw(st.one_of(_FLOATS, st.floats(0.0, 0.99)))
    optim = with_config(lrate=lrate, modules=["scaffold-client", ["momentum", {"beta": beta}]])
    shape = draw(st.sampled_from([(3, 1), (3, 1), (1, 3), (4, 1)]))
    dtype = draw(st.sampled_from(["float64", "float64", "float32"]))
    kernel = np.array(draw(st.lists(_FINITE, min_size=4, max_size=4))[: math.prod(shape)])
    kernel = kernel.reshape(shape).astype(dtype)
    if draw(st.booleans()):
        kernel.flat[0] = draw(_FLOATS)
    aux = {"scaffold": {"state": server_state(kernel=kernel)}}
    steps = draw(st.sampled_from([1, 3, 10**12]))
    return weights, fit_config(optim, aux, n_steps=steps)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=server_messages())
def test_fuzzed_server_messages_never_store_a_non_finite_state(
    message: tuple[list[np.ndarray], dict[str, Any]], data: InMemoryDataset
) -> None:
    context = make_context(1)
    DeclearnClient(LinearModel(3), data, context).fit(start_weights(), fit_config(aux=GOOD_AUX))
    before = state_bytes(context)
    weights, config = message
    try:
        DeclearnClient(LinearModel(3), data, context).fit(weights, config)
    except ValueError:  # RejectedMessage, or a round that diverged
        assert state_bytes(context) == before
        return
    saved = wire.decode(context.state[STATE_KEY]["optimizer_state"])  # type: ignore[index]
    # The round was accepted: its stored state is finite.
    for _, mod_state in saved["modules"]:
        for value in mod_state.values():
            if isinstance(value, NumpyVector):
                assert all(np.isfinite(a).all() for a in value.coefs.values())
