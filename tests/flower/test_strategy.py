"""DeclearnStrategy: per-client configs, validated FedOpt aggregation, aux-vars, checkpoints."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, ClassVar

import numpy as np
import pytest
from flwr.client import NumPyClient
from flwr.common import (
    Code,
    FitRes,
    NDArrays,
    Parameters,
    Scalar,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import SimpleClientManager
from flwr.server.strategy import FedAvg

from flwr_declearn.flower import DeclearnClient, DeclearnStrategy, aggregation, checkpoint, wire
from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer, OptiModule, PerClientAuxVar

from .conftest import (
    LinearModel,
    LocalClientProxy,
    make_context,
    regression_data,
    run_legacy,
)

SHAPES = {"bias": (1,), "kernel": (3, 1)}


def random_weights(rng: np.random.Generator, dtype: str = "float32") -> list[np.ndarray]:
    return [rng.normal(size=SHAPES[name]).astype(dtype) for name in sorted(SHAPES)]


def fit_res(arrays: NDArrays, num_examples: int, **metrics: Scalar) -> FitRes:
    return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), num_examples, metrics)


def make_strategy(**kwargs: Any) -> DeclearnStrategy:
    defaults: dict[str, Any] = {
        "model": LinearModel(3, dtype="float32"),
        "client_optimizer": Optimizer(0.05),
        "train_config": {"batch_size": 8, "n_steps": 5, "shuffle": False},
        "min_fit_clients": 3,
        "min_evaluate_clients": 3,
        "min_available_clients": 3,
    }
    return DeclearnStrategy(**{**defaults, **kwargs})


def client_fn_for(index: int, dtype: str = "float32", **kwargs: Any) -> Any:
    def client_fn(context: Any) -> DeclearnClient:
        data = regression_data(20 + 10 * index, seed=index, shift=float(index))
        return DeclearnClient(LinearModel(3, dtype=dtype, **kwargs), data, context)

    return client_fn


def proxies(n_clients: int = 3, dtype: str = "float32", **kwargs: Any) -> list[LocalClientProxy]:
    return [
        LocalClientProxy(str(i + 1), client_fn_for(i, dtype, **kwargs), make_context(i + 1, i))
        for i in range(n_clients)
    ]


class EchoServerModule(OptiModule, register=False):
    """Server module emitting distinct aux-vars per client, recording what clients send."""

    name: ClassVar[str] = "echo-server"
    aux_name: ClassVar[str | None] = "echo"

    def __init__(self) -> None:
        self.received: dict[str, Any] = {}

    def run(self, gradients: Vector) -> Vector:
        return gradients

    def collect_aux_var(self) -> PerClientAuxVar:
        return PerClientAuxVar({"2": {"value": 2.0}}, default={"value": -1.0})

    def process_aux_var(self, aux_var: dict[str, Any]) -> None:
        for cid, aux in aux_var.items():
            if not isinstance(aux.get("value"), float):
                raise TypeError(f"client {cid}: 'value' must be a float")
        self.received.update(aux_var)

    def get_state(self) -> dict[str, Any]:
        return {"received": dict(self.received)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.received = dict(state["received"])


def echo_aux(value: Any) -> bytes:
    return wire.encode({"echo": {"value": value}})


# -- configure_fit ----------------------------------------------------------------------------


def test_configure_fit_gives_each_client_its_own_config_and_aux_vars() -> None:
    strategy = make_strategy(server_optimizer=Optimizer(1.0, modules=[EchoServerModule()]))
    manager = SimpleClientManager()
    for proxy in proxies():
        manager.register(proxy)
    params = strategy.initialize_parameters(manager)
    assert params is not None
    instructions = strategy.configure_fit(1, params, manager)
    assert sorted(proxy.cid for proxy, _ in instructions) == ["1", "2", "3"]
    configs = [ins.config for _, ins in instructions]
    assert len({id(config) for config in configs}) == 3  # never one shared dict
    for proxy, ins in instructions:
        assert ins.parameters is params
        assert wire.decode(ins.config[wire.KEY_OPTIMIZER]) == Optimizer(0.05).get_config()
        assert wire.decode(ins.config[wire.KEY_TRAIN_CONFIG])["n_steps"] == 5
        assert ins.config[wire.KEY_ROUND] == 1
        aux = wire.decode(ins.config[wire.KEY_AUX_VAR])
        assert aux == {"echo": {"value": 2.0 if proxy.cid == "2" else -1.0}}


def test_configure_fit_sends_no_aux_entry_when_the_server_emits_none() -> None:
    strategy = make_strategy()
    manager = SimpleClientManager()
    for proxy in proxies():
        manager.register(proxy)
    instructions = strategy.configure_fit(1, strategy.global_parameters(), manager)
    assert all(wire.KEY_AUX_VAR not in ins.config for _, ins in instructions)


def test_parameters_from_elsewhere_become_the_global_weights() -> None:
    strategy = make_strategy()
    manager = SimpleClientManager()
    for proxy in proxies():
        manager.register(proxy)
    other = random_weights(np.random.default_rng(0))
    strategy.configure_fit(1, ndarrays_to_parameters(other), manager)
    np.testing.assert_array_equal(strategy.global_weights["kernel"], other[1])


# -- aggregate_fit ----------------------------------------------------------------------------


def test_default_aggregation_equals_flowers_fedavg() -> None:
    rng = np.random.default_rng(1)
    strategy = make_strategy()
    proxy_list = proxies()
    results = [
        (proxy, fit_res(random_weights(rng), n, train_loss=float(n)))
        for proxy, n in zip(proxy_list, (10, 35, 7), strict=True)
    ]
    ours, metrics = strategy.aggregate_fit(1, results, [])
    theirs, _ = FedAvg().aggregate_fit(1, results, [])
    assert ours is not None and theirs is not None
    for got, exp in zip(parameters_to_ndarrays(ours), parameters_to_ndarrays(theirs), strict=True):
        assert got.dtype == exp.dtype == np.float32
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-6)
    assert metrics == {"train_loss": pytest.approx((100 + 35**2 + 49) / 52)}


class PlainSGDClient(NumPyClient):
    """Plain numpy SGD on the same linear model, as a Flower user would write it."""

    def __init__(self, index: int) -> None:
        self.data = regression_data(20 + 10 * index, seed=index, shift=float(index))
        self.steps = 0

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> Any:
        bias, kernel = (np.array(p) for p in parameters)
        lrate = np.float32(0.05)
        for _ in range(5):  # 5 steps, cycling over epochs like TrainingConfig(n_steps=5)
            batches = self.data.generate_batches(8, drop_remainder=False)
            for _step, (inputs, target, _) in zip(range(5), batches, strict=False):
                inputs = inputs.astype(np.float32)
                target = target.astype(np.float32).reshape(-1, 1)
                errors = inputs @ kernel + bias - target
                grad_k = (2 * errors * inputs).mean(axis=0).reshape(-1, 1)
                grad_b = (2 * errors[:, 0]).mean().reshape(1)
                bias = (bias - lrate * grad_b).astype(np.float32)
                kernel = (kernel - lrate * grad_k).astype(np.float32)
                self.steps += 1
                if self.steps == 5:
                    return [bias, kernel], len(self.data), {}
        raise AssertionError("unreachable")


def test_three_rounds_match_flowers_fedavg_with_plain_clients() -> None:
    ours = make_strategy(fraction_evaluate=0.0)
    run_legacy(ours, proxies(), num_rounds=3)
    # Flower's FedAvg with plain clients, driven round by round to read its final weights.
    baseline = FedAvg(min_fit_clients=3, min_available_clients=3, fraction_evaluate=0.0)
    manager = SimpleClientManager()
    for i in range(3):
        manager.register(
            LocalClientProxy(str(i + 1), lambda ctx, i=i: PlainSGDClient(i), make_context(i + 1))
        )
    params = ndarrays_to_parameters([np.zeros(1, np.float32), np.zeros((3, 1), np.float32)])
    for rnd in range(1, 4):
        instructions = baseline.configure_fit(rnd, params, manager)
        results = [(proxy, proxy.fit(ins, None, None)) for proxy, ins in instructions]
        new, _ = baseline.aggregate_fit(rnd, results, [])
        assert new is not None
        params = new
    for name, exp in zip(["bias", "kernel"], parameters_to_ndarrays(params), strict=True):
        np.testing.assert_allclose(ours.global_weights[name], exp, rtol=0, atol=1e-6)
    assert np.abs(ours.global_weights["kernel"]).max() > 0.1  # training did move the weights


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda w: [w[0], w[1].reshape(1, 3)], r"'kernel': expected float32\[3, 1\]"),
        (
            lambda w: [w[0].astype("float64"), w[1]],
            r"'bias': expected float32\[1\], received float64",
        ),
        (lambda w: [w[0]], "Expected 2 weight arrays, received 1"),
        (lambda w: [np.full(1, np.nan, np.float32), w[1]], "weight 'bias' holds non-finite"),
    ],
)
def test_invalid_client_weights_are_skipped_and_logged(
    bad: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(2)
    strategy = make_strategy()
    proxy_list = proxies()
    good = [
        (proxy_list[0], fit_res(random_weights(rng), 10)),
        (proxy_list[2], fit_res(random_weights(rng), 30)),
    ]
    results = [good[0], (proxy_list[1], fit_res(bad(random_weights(rng)), 20)), good[1]]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        ours, _ = strategy.aggregate_fit(1, results, [])
    assert "skipping the update of client 2" in caplog.text
    assert any(re.search(reason, rec.getMessage()) for rec in caplog.records)
    expected, _ = FedAvg().aggregate_fit(1, good, [])
    for got, exp in zip(
        parameters_to_ndarrays(ours),
        parameters_to_ndarrays(expected),
        strict=True,  # type: ignore[arg-type]
    ):
        np.testing.assert_allclose(got, exp, atol=1e-6)


@pytest.mark.parametrize(
    ("aux", "count", "reason"),
    [
        (b"\x08\x07", 20, "Unsupported wire payload version: 7"),
        ("not bytes", 20, "aux-vars must be bytes"),
        (wire.encode([1, 2]), 20, "must be a dict of dicts"),
        (wire.encode({"unknown": {"x": 1}}), 20, "unknown aux_name"),
        (echo_aux("not a float"), 20, "'echo.value' must be a Vector or a number"),
        (echo_aux(1.0), 0, "num_examples must be a positive int"),
    ],
)
def test_invalid_aux_vars_and_counts_skip_only_that_client(
    aux: Any, count: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    module = EchoServerModule()
    strategy = make_strategy(server_optimizer=Optimizer(1.0, modules=[module]))
    proxy_list = proxies()
    results = [
        (proxy_list[0], fit_res(random_weights(rng), 10, **{wire.KEY_AUX_VAR: echo_aux(1.0)})),
        (proxy_list[1], fit_res(random_weights(rng), count, **{wire.KEY_AUX_VAR: aux})),
        (proxy_list[2], fit_res(random_weights(rng), 30, **{wire.KEY_AUX_VAR: echo_aux(3.0)})),
    ]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        params, _ = strategy.aggregate_fit(1, results, [])
    assert params is not None
    assert "client 2" in caplog.text and reason in caplog.text
    assert module.received == {"1": {"value": 1.0}, "3": {"value": 3.0}}
    expected, _ = FedAvg().aggregate_fit(1, [results[0], results[2]], [])
    np.testing.assert_allclose(
        parameters_to_ndarrays(params)[1],
        parameters_to_ndarrays(expected)[1],
        atol=1e-6,  # type: ignore[arg-type]
    )


def test_undecodable_weights_skip_the_client(caplog: pytest.LogCaptureFixture) -> None:
    strategy = make_strategy()
    proxy_list = proxies()
    junk = FitRes(Status(Code.OK, ""), Parameters([b"junk", b""], "numpy.ndarray"), 5, {})
    with caplog.at_level(logging.WARNING, logger="flwr"):
        params, metrics = strategy.aggregate_fit(1, [(proxy_list[0], junk)], [])
    assert params is None and metrics == {}
    assert "skipping the update of client 1: undecodable weights" in caplog.text


def test_failures_block_aggregation_unless_accepted() -> None:
    rng = np.random.default_rng(4)
    proxy_list = proxies()
    results = [(proxy_list[0], fit_res(random_weights(rng), 10))]
    failures: list[Any] = [RuntimeError("client 2 crashed")]
    assert make_strategy().aggregate_fit(1, results, failures)[0] is not None
    assert make_strategy(accept_failures=False).aggregate_fit(1, results, failures) == (None, {})
    assert make_strategy().aggregate_fit(1, [], failures) == (None, {})


def test_user_metric_aggregation_never_sees_internal_payloads() -> None:
    rng = np.random.default_rng(5)
    seen: list[Any] = []

    def aggregate(metrics: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
        seen.extend(metrics)
        return {"clients": len(metrics)}

    module = EchoServerModule()
    strategy = make_strategy(
        server_optimizer=Optimizer(1.0, modules=[module]), fit_metrics_aggregation_fn=aggregate
    )
    proxy = proxies()[0]
    res = fit_res(random_weights(rng), 10, train_loss=0.5, **{wire.KEY_AUX_VAR: echo_aux(1.0)})
    _, metrics = strategy.aggregate_fit(1, [(proxy, res)], [])
    assert metrics == {"clients": 1}
    assert seen == [(10, {"train_loss": 0.5})]


def test_server_optimizer_moves_trainable_weights_and_averages_the_others() -> None:
    rng = np.random.default_rng(6)
    model = LinearModel(3, dtype="float64", with_stats=True)
    strategy = make_strategy(model=model, server_optimizer=Optimizer(0.5))
    start = {name: val.copy() for name, val in strategy.global_weights.items()}
    proxy_list = proxies()
    names = ["bias", "input_mean", "kernel"]
    shapes = {"bias": (1,), "input_mean": (3,), "kernel": (3, 1)}
    client_weights = [[rng.normal(size=shapes[n]) for n in names] for _ in range(2)]
    results = [(proxy_list[i], fit_res(client_weights[i], n)) for i, n in enumerate((10, 30))]
    strategy.aggregate_fit(1, results, [])
    new = strategy.global_weights
    for idx, name in enumerate(names):
        average = 0.25 * client_weights[0][idx] + 0.75 * client_weights[1][idx]
        if name == "input_mean":  # non-trainable: replaced by the average, not optimized
            np.testing.assert_allclose(new[name], average, atol=1e-12)
        else:  # trainable: half a step towards the average
            np.testing.assert_allclose(new[name], start[name] + 0.5 * (average - start[name]))
    assert sorted(strategy.core.trainable_names) == ["bias", "kernel"]


def test_float64_weighted_sums_make_the_pseudo_gradient_exact_for_fedavg() -> None:
    rng = np.random.default_rng(7)
    glob = {"w": rng.normal(size=100).astype(np.float32)}
    clients = [{"w": rng.normal(size=100).astype(np.float32)} for _ in range(5)]
    counts = [3, 1, 4, 1, 5]
    grad = aggregation.pseudo_gradient(glob, clients, counts)["w"]
    avg = aggregation.weighted_average(clients, counts)["w"]
    assert grad.dtype == avg.dtype == np.float32
    exact = sum(c * w["w"].astype(np.float64) for c, w in zip(counts, clients, strict=True)) / 14
    np.testing.assert_allclose(glob["w"] - grad, exact, atol=1e-6)
    np.testing.assert_allclose(avg, exact, atol=1e-7)


# -- full rounds ------------------------------------------------------------------------------


def test_scaffold_rounds_track_each_client_by_its_stable_id() -> None:
    strategy = make_strategy(
        model=LinearModel(3),
        client_optimizer=Optimizer(0.05, modules=["scaffold-client"]),
        server_optimizer=Optimizer(1.0, modules=["scaffold-server"]),
    )
    proxy_list = proxies(dtype="float64")
    run_legacy(strategy, proxy_list, num_rounds=3)
    server = strategy.core.server_optimizer.modules[0]
    assert server.clients == {"1", "2", "3"}
    # The server's sum of control variates is the sum of the c_i each client keeps in its state.
    c_sum = None
    for proxy in proxy_list:
        state = wire.decode(proxy.context.state["declearn.client"]["optimizer_state"])
        c_i = state["modules"][0][1]["state"]
        c_sum = c_i if c_sum is None else c_sum + c_i
    for name in ("bias", "kernel"):
        np.testing.assert_allclose(server.s_state.coefs[name], c_sum.coefs[name], atol=1e-12)


def test_partial_participation_samples_a_fraction_of_the_clients() -> None:
    strategy = make_strategy(fraction_fit=0.5, min_fit_clients=1, min_available_clients=4)
    proxy_list = proxies(4)
    run_legacy(strategy, proxy_list, num_rounds=2)
    assert sum(proxy.calls.count("fit") for proxy in proxy_list) == 4  # 2 per round


def test_federated_and_server_side_evaluation() -> None:
    calls: list[tuple[int, list[str]]] = []

    def evaluate_fn(rnd: int, weights: dict[str, np.ndarray]) -> tuple[float, dict[str, Scalar]]:
        calls.append((rnd, sorted(weights)))
        return float(rnd), {"round": rnd}

    strategy = make_strategy(evaluate_fn=evaluate_fn)
    history = run_legacy(strategy, proxies(), num_rounds=2)
    assert calls == [(0, ["bias", "kernel"]), (1, ["bias", "kernel"]), (2, ["bias", "kernel"])]
    assert [loss for _, loss in history.losses_centralized] == [0.0, 1.0, 2.0]
    losses = [loss for _, loss in history.losses_distributed]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_aggregate_evaluate_weights_losses_and_metrics_by_examples() -> None:
    from flwr.common import EvaluateRes

    strategy = make_strategy()
    proxy_list = proxies()
    results = [
        (proxy_list[0], EvaluateRes(Status(Code.OK, ""), 1.0, 10, {"accuracy": 0.5})),
        (proxy_list[1], EvaluateRes(Status(Code.OK, ""), 3.0, 30, {"accuracy": 0.9})),
    ]
    loss, metrics = strategy.aggregate_evaluate(1, results, [])
    assert loss == pytest.approx(2.5)
    assert metrics == {"accuracy": pytest.approx(0.8)}


# -- checkpoints --------------------------------------------------------------------------------


def adam_strategy(**kwargs: Any) -> DeclearnStrategy:
    return make_strategy(
        model=LinearModel(3),
        client_optimizer=Optimizer(0.05, modules=["scaffold-client"]),
        server_optimizer=Optimizer(0.1, modules=["scaffold-server", "adam"]),
        fraction_evaluate=0.0,
        **kwargs,
    )


def test_checkpoint_resume_continues_exactly_where_training_stopped(tmp_path: Any) -> None:
    straight = adam_strategy()
    run_legacy(straight, proxies(dtype="float64"), num_rounds=4)

    path = tmp_path / "ckpt" / "server.npz"
    first = adam_strategy(checkpoint_path=path)
    resumed_proxies = proxies(dtype="float64")
    run_legacy(first, resumed_proxies, num_rounds=2)
    assert path.exists()
    second = adam_strategy()
    second.load_checkpoint(path)
    assert second.core.server_round == 2
    run_legacy(second, resumed_proxies, num_rounds=2)
    assert second.core.server_round == 4
    for name, value in straight.global_weights.items():
        np.testing.assert_allclose(second.global_weights[name], value, rtol=0, atol=1e-12)


def test_checkpoints_are_hashed_wire_payloads_without_pickle(tmp_path: Any) -> None:
    strategy = adam_strategy()
    path = strategy.save_checkpoint(tmp_path / "c.ckpt")
    data = path.read_bytes()
    assert data.startswith(checkpoint.MAGIC)
    payload = data[len(checkpoint.MAGIC) + 32 :]
    assert (
        hashlib.sha256(payload).digest() == data[len(checkpoint.MAGIC) : len(checkpoint.MAGIC) + 32]
    )
    content = wire.decode(payload)  # the wire codec: no pickle anywhere
    assert content["format"] == "flwr_declearn.server_checkpoint" and content["server_round"] == 0
    assert content["server_optimizer"]["config"]["modules"][1][0] == "adam"
    assert sorted(content["weights"].coefs) == ["bias", "kernel"]


def test_incompatible_checkpoints_are_rejected_clearly(tmp_path: Any) -> None:
    path = adam_strategy().save_checkpoint(tmp_path / "c.npz")
    other = make_strategy(model=LinearModel(3, with_stats=True))
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"weights do not match the model: .*missing from the other vector: \['input_mean'\]",
    ):
        other.load_checkpoint(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(checkpoint.CheckpointError, match="not a flwr_declearn checkpoint"):
        adam_strategy().load_checkpoint(junk)
    np.savez(tmp_path / "plain.npz", w=np.zeros(2))
    with pytest.raises(checkpoint.CheckpointError, match="not a flwr_declearn checkpoint"):
        adam_strategy().load_checkpoint(tmp_path / "plain.npz")
    with pytest.raises(checkpoint.CheckpointError, match="Cannot read checkpoint"):
        adam_strategy().load_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="No checkpoint path"):
        adam_strategy().save_checkpoint()


# -- construction ---------------------------------------------------------------------------------


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one of `model` and `initial_weights`"):
        DeclearnStrategy(client_optimizer=Optimizer(0.1))
    with pytest.raises(ValueError, match="must be initialized"):
        DeclearnStrategy(model=LinearModel(), client_optimizer=Optimizer(0.1))
    with pytest.raises(KeyError, match="lrate"):
        DeclearnStrategy(model=LinearModel(3), client_optimizer={"modules": []})
    with pytest.raises(ValueError, match="fraction_fit"):
        DeclearnStrategy(model=LinearModel(3), client_optimizer=Optimizer(0.1), fraction_fit=2.0)
    strategy = DeclearnStrategy(
        initial_weights={"w": np.zeros(3), "n": np.zeros(1, dtype=np.int64)},
        trainable=["w"],
        client_optimizer={"lrate": 0.1},
    )
    assert strategy.core.trainable_names == ["w"]
    assert isinstance(strategy.core.weights.get_weights(), NumpyVector)


# -- config delivery ------------------------------------------------------------------------------


def manual_round(
    strategy: DeclearnStrategy, manager: SimpleClientManager, rnd: int
) -> tuple[list[Any], list[Any]]:
    """One fit round driven by hand; client exceptions become failures, as in Flower's Server."""
    instructions = strategy.configure_fit(rnd, strategy.global_parameters(), manager)
    results, failures = [], []
    for proxy, ins in instructions:
        try:
            results.append((proxy, proxy.fit(ins, None, None)))
        except ValueError as exc:
            failures.append(exc)
    strategy.aggregate_fit(rnd, results, failures)
    return instructions, failures


def test_configs_are_sent_once_per_client_then_only_their_id() -> None:
    strategy = make_strategy()
    manager = SimpleClientManager()
    proxy_list = proxies()
    for proxy in proxy_list:
        manager.register(proxy)
    first, _ = manual_round(strategy, manager, 1)
    second, failures = manual_round(strategy, manager, 2)
    assert not failures
    for _, ins in first:
        assert wire.KEY_OPTIMIZER in ins.config and wire.KEY_TRAIN_CONFIG in ins.config
        assert ins.config[wire.KEY_CONFIG_ID] == strategy.core.config_id
    for _, ins in second:
        assert wire.KEY_OPTIMIZER not in ins.config and wire.KEY_TRAIN_CONFIG not in ins.config
        assert ins.config[wire.KEY_CONFIG_ID] == strategy.core.config_id
    overhead = sum(len(k) + len(v) for k, v in second[0][1].config.items() if isinstance(v, bytes))
    assert overhead < 40  # steady-state downlink cost of the configs, in bytes


def test_a_client_that_lost_its_state_fails_once_then_always_gets_the_configs() -> None:
    from flwr.app import RecordDict

    strategy = make_strategy(min_fit_clients=2)
    manager = SimpleClientManager()
    proxy_list = proxies()
    for proxy in proxy_list:
        manager.register(proxy)
    manual_round(strategy, manager, 1)
    proxy_list[1].context.state = RecordDict()  # e.g. its SuperNode restarted
    _, failures = manual_round(strategy, manager, 2)
    assert len(failures) == 1 and "does not hold" in str(failures[0])
    for rnd in (3, 4):  # from now on, client 2 gets the configs every round
        instructions, failures = manual_round(strategy, manager, rnd)
        assert not failures
        resent = {proxy.cid for proxy, ins in instructions if wire.KEY_OPTIMIZER in ins.config}
        assert resent == {"2"}


def test_default_evaluation_settings_are_not_sent() -> None:
    assert wire.KEY_EVAL_CONFIG not in make_strategy().core.evaluate_config(1)
    custom = make_strategy(eval_config={"batch_size": 7})
    assert wire.decode(custom.core.evaluate_config(1)[wire.KEY_EVAL_CONFIG]) == {"batch_size": 7}


def test_clients_without_persistent_context_lose_a_single_round() -> None:
    def stateless_fn(index: int) -> Any:
        def client_fn(context: Any) -> DeclearnClient:
            data = regression_data(20 + 10 * index, seed=index)
            return DeclearnClient(LinearModel(3, dtype="float32"), data)  # no Context

        return client_fn

    strategy = make_strategy(fraction_evaluate=0.0)
    stateless = [
        LocalClientProxy(str(i + 1), stateless_fn(i), make_context(i + 1)) for i in range(3)
    ]
    history = run_legacy(strategy, stateless, num_rounds=4)
    trained = [rnd for rnd, _ in history.metrics_distributed_fit["train_loss"]]
    assert trained == [1, 3, 4]  # round 2 failed everywhere: configs referenced by id only
