"""The server trusts no client: boundary checks, transactional rounds, robust aggregators."""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedMedian, FedTrimmedAvg

from flwr_declearn.flower import DeclearnMessageStrategy, DeclearnStrategy, wire
from flwr_declearn.flower._core import AggregationError
from flwr_declearn.flower._records import arrays_to_record
from flwr_declearn.flower._validation import SpecMismatchError
from flwr_declearn.flower.aggregators import Aggregator, build_aggregator
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, LocalClientProxy, make_context

SPECS = {"bias": (1,), "kernel": (3, 1)}


def weights(rng: np.random.Generator, dtype: str = "float32") -> dict[str, np.ndarray]:
    return {name: rng.normal(size=shape).astype(dtype) for name, shape in SPECS.items()}


def proxy(cid: str) -> LocalClientProxy:
    return LocalClientProxy(cid, lambda ctx: None, make_context(int(cid)))


def fit_res(named: dict[str, np.ndarray], count: Any, aux: Any = None) -> FitRes:
    metrics = {} if aux is None else {wire.KEY_AUX_VAR: aux}
    arrays = [named[name] for name in sorted(named)]
    return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), count, metrics)


def reply(
    node: int, named: dict[str, np.ndarray] | ArrayRecord, count: Any, aux: Any = None
) -> Message:
    record = named if isinstance(named, ArrayRecord) else arrays_to_record(named)
    content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": count})})
    if aux is not None:
        content["declearn"] = ConfigRecord({wire.KEY_AUX_VAR: aux})
    request = Message(RecordDict(), dst_node_id=node, message_type="train")
    msg = Message(content, reply_to=request)
    msg.metadata.__dict__["_src_node_id"] = node
    return msg


def scaffold_options(**kwargs: Any) -> dict[str, Any]:
    return {
        "model": LinearModel(3, dtype="float32"),
        "client_optimizer": Optimizer(0.05, modules=["scaffold-client"]),
        "server_optimizer": Optimizer(0.5, modules=["scaffold-server", "adam"]),
        **kwargs,
    }


def legacy(**kwargs: Any) -> DeclearnStrategy:
    return DeclearnStrategy(**scaffold_options(**kwargs))


def message(**kwargs: Any) -> DeclearnMessageStrategy:
    return DeclearnMessageStrategy(**scaffold_options(**kwargs))


def state_bytes(strategy: Any) -> bytes:
    """Every bit of the server state: weights and server Optimizer state."""
    core = strategy.core
    return wire.encode([core.get_weights(), core.server_optimizer.get_state(), core.server_round])


def delta(named: dict[str, np.ndarray]) -> bytes:
    return wire.encode({"scaffold": {"delta": NumpyVector(named)}})


def run_legacy_round(strategy: DeclearnStrategy, rnd: int, items: list[tuple[str, FitRes]]) -> Any:
    return strategy.aggregate_fit(rnd, [(proxy(cid), res) for cid, res in items], [])


# -- boundary checks --------------------------------------------------------------------------


BAD_COUNTS = [0, -3, 2**62, 1.7e308, 2.5, True, "10", None, float("nan")]


@pytest.mark.parametrize("count", BAD_COUNTS)
def test_bad_example_counts_skip_the_client_on_both_apis(
    count: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    good = weights(rng)
    bad = weights(rng)
    ref_legacy, ref_message = legacy(), message()
    run_legacy_round(ref_legacy, 1, [("1", fit_res(good, 10))])
    ref_message.aggregate_train(1, [reply(1, good, 10)])

    strategy = legacy()
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_legacy_round(strategy, 1, [("1", fit_res(good, 10)), ("2", fit_res(bad, count))])
    assert "skipping the update of client 2: num_examples must be a positive int" in caplog.text
    assert state_bytes(strategy) == state_bytes(ref_legacy)
    if isinstance(count, int | float) and not isinstance(count, bool):  # a MetricRecord value
        caplog.clear()
        mstrategy = message()
        with caplog.at_level(logging.WARNING, logger="flwr"):
            mstrategy.aggregate_train(1, [reply(1, good, 10), reply(2, bad, count)])
        assert "skipping the update of client 2: num_examples must be a positive int" in caplog.text
        assert state_bytes(mstrategy) == state_bytes(ref_message)


def npy_claiming(shape: tuple[int, ...], payload: bytes, dtype: str = "float32") -> bytes:
    """A .npy payload whose header declares `shape` but that carries `payload`."""
    buffer = io.BytesIO()
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def test_an_array_header_declaring_2_40_elements_is_skipped_not_allocated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(1)
    good = weights(rng)
    huge = Array(
        dtype="float32",
        shape=(2**40,),
        stype="numpy.ndarray",
        data=npy_claiming((2**40,), b"\0" * 4),
    )
    record = ArrayRecord({"bias": huge, "kernel": Array(good["kernel"])})
    lying = Array(
        dtype="float32", shape=(1,), stype="numpy.ndarray", data=npy_claiming((2**40,), b"\0" * 4)
    )
    record2 = ArrayRecord({"bias": lying, "kernel": Array(good["kernel"])})
    strategy, reference = message(), message()
    reference.aggregate_train(1, [reply(1, good, 10)])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        strategy.aggregate_train(
            1, [reply(1, good, 10), reply(2, record, 10), reply(3, record2, 10)]
        )
    assert (
        "client 2: Weight arrays do not match the model: 'bias': expected float32[1]" in caplog.text
    )
    assert (
        "client 3: Weight arrays do not match the model: 'bias': expected float32[1], "
        "received float32[1099511627776]" in caplog.text
    )
    assert state_bytes(strategy) == state_bytes(reference)
    # Same on the legacy path: a tensor claiming 2**40 elements.
    lstrategy, lreference = legacy(), legacy()
    run_legacy_round(lreference, 1, [("1", fit_res(good, 10))])
    res = fit_res(good, 10)
    res.parameters.tensors[0] = npy_claiming((1,), b"\0" * 8)  # right header, wrong size
    res2 = fit_res(good, 10)
    res2.parameters.tensors[0] = npy_claiming((2**40,), b"\0" * 4)
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_legacy_round(lstrategy, 1, [("1", fit_res(good, 10)), ("2", res), ("3", res2)])
    assert "client 2: undecodable weights: 'bias': float32[1] needs 4 bytes, but 8" in caplog.text
    assert state_bytes(lstrategy) == state_bytes(lreference)


def test_duplicate_replies_of_a_node_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(2)
    first, second, other = weights(rng), weights(rng), weights(rng)
    strategy, reference = message(server_optimizer=None), message(server_optimizer=None)
    reference.aggregate_train(1, [reply(1, first, 10), reply(2, other, 10)])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        strategy.aggregate_train(
            1, [reply(1, first, 10), reply(2, other, 10), reply(1, second, 10)]
        )
    assert "client 1: duplicate reply" in caplog.text
    assert state_bytes(strategy) == state_bytes(reference)


@pytest.mark.parametrize(
    ("bad_delta", "fault"),
    [
        (
            lambda w: {"bias": w["bias"], "kernel": w["kernel"].reshape(1, 3)},
            "'kernel': float32[3, 1] vs float32[1, 3]",
        ),
        (lambda w: {"bias": w["bias"], "weights": w["kernel"]}, "names differ"),
        (lambda w: {k: v.astype("float64") for k, v in w.items()}, "float32[1] vs float64[1]"),
        (lambda w: {"bias": np.full(1, np.nan, "float32"), "kernel": w["kernel"]}, "non-finite"),
        (lambda w: {"bias": np.full(1, np.inf, "float32"), "kernel": w["kernel"]}, "non-finite"),
        (lambda w: {"bias": np.full(1, 1e30, "float32"), "kernel": w["kernel"]}, "magnitude 1e+30"),
    ],
)
@pytest.mark.parametrize("api", ["legacy", "message"])
def test_first_round_scaffold_deltas_are_checked_before_the_empty_state_adopts_them(
    bad_delta: Any, fault: str, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(3)
    good_w, bad_w = weights(rng), weights(rng)
    good_aux, bad_aux = delta(weights(rng)), delta(bad_delta(weights(rng)))
    build = legacy if api == "legacy" else message
    strategy, reference = build(), build()

    def run(strat: Any, items: list[tuple[int, Any, Any]]) -> None:
        if api == "legacy":
            run_legacy_round(strat, 1, [(str(n), fit_res(w, 10, a)) for n, w, a in items])
        else:
            strat.aggregate_train(1, [reply(n, w, 10, a) for n, w, a in items])

    run(reference, [(1, good_w, good_aux)])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run(strategy, [(1, good_w, good_aux), (2, bad_w, bad_aux)])
    lines = [rec.getMessage() for rec in caplog.records if "client 2" in rec.getMessage()]
    assert len(lines) == 1 and "aux-var 'scaffold.delta" in lines[0] and fault in lines[0]
    assert state_bytes(strategy) == state_bytes(reference)
    # The only client's bad delta: nothing changes, the next round still works.
    alone = build()
    before = state_bytes(alone)
    run(alone, [(2, bad_w, bad_aux)])
    assert state_bytes(alone) == before
    assert alone.core.server_optimizer.modules[0].s_state is None


@pytest.mark.parametrize(
    ("aux", "fault"),
    [
        (wire.encode({"scaffold": {"delta": 0.0, "extra": 1.0}}), "must hold the keys ['delta']"),
        (wire.encode({"scaffold": {}}), "must hold the keys ['delta']"),
        (wire.encode({"scaffold": {"delta": float("nan")}}), "not finite"),
        (wire.encode({"scaffold": {"delta": "zero"}}), "must be a Vector or a number"),
        (wire.encode({"adam": {"delta": 0.0}}), "unknown aux_name(s) ['adam']"),
        (wire.encode({"scaffold": []}), "must be a dict of dicts"),
        (b"\xff" * 7, "not a valid flwr_declearn message"),
        (12, "aux-vars must be bytes"),
    ],
)
def test_malformed_aux_vars_skip_the_client(
    aux: Any, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(4)
    strategy, reference = legacy(), legacy()
    good = fit_res(weights(rng), 10, delta(weights(rng)))
    bad = fit_res(weights(rng), 10, aux)
    run_legacy_round(reference, 1, [("1", good)])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_legacy_round(strategy, 1, [("1", good), ("2", bad)])
    assert "skipping the update of client 2" in caplog.text and fault in caplog.text
    assert state_bytes(strategy) == state_bytes(reference)


def test_optional_bounds_on_update_and_aux_norms(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(5)
    small = {name: np.full(shape, 0.1, "float32") for name, shape in SPECS.items()}
    big = {name: np.full(shape, 10.0, "float32") for name, shape in SPECS.items()}
    strategy = legacy(limits={"max_update_norm": 1.0, "max_aux_norm": 1.0})
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_legacy_round(
            strategy,
            1,
            [
                ("1", fit_res(small, 10, delta(small))),
                ("2", fit_res(big, 10, delta(small))),
                ("3", fit_res(small, 10, delta(big))),
            ],
        )
    assert "client 2: its update has an L2 norm of 20 (bound 1)" in caplog.text
    assert "client 3: aux-var 'scaffold.delta' has an L2 norm of 20 (bound 1)" in caplog.text
    assert strategy.core.server_optimizer.modules[0].clients == {"1"}
    with pytest.raises(ValueError, match="max_examples"):
        legacy(limits={"max_examples": 0})
    del rng


def test_huge_finite_weights_are_rejected_by_the_default_value_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(6)
    good = weights(rng)
    huge = {name: np.full(shape, 1e30, "float32") for name, shape in SPECS.items()}
    strategy, reference = legacy(), legacy()
    run_legacy_round(reference, 1, [("1", fit_res(good, 10))])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        run_legacy_round(strategy, 1, [("1", fit_res(good, 10)), ("2", fit_res(huge, 10))])
    assert "client 2: weight 'bias' holds a value of magnitude 1e+30" in caplog.text
    assert state_bytes(strategy) == state_bytes(reference)


def test_a_spec_mismatch_names_the_client_and_may_stop_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(7)
    good = weights(rng)
    other = {"bias": good["bias"], "kernel": good["kernel"].reshape(1, 3)}
    with caplog.at_level(logging.WARNING, logger="flwr"):
        message().aggregate_train(1, [reply(1, good, 10), reply(2, other, 10)])
    lines = [rec.getMessage() for rec in caplog.records if "client 2" in rec.getMessage()]
    assert len(lines) == 1
    assert "'kernel': expected float32[3, 1], received float32[1, 3]" in lines[0]
    strict = message(on_spec_mismatch="fail")
    renamed = {"b": good["bias"], "w": good["kernel"]}
    with pytest.raises(
        SpecMismatchError,
        match=r"round 1: client 2: .*missing \['bias', 'kernel'\], unexpected \['b', 'w'\]",
    ):
        strict.aggregate_train(1, [reply(1, good, 10), reply(2, renamed, 10)])
    with pytest.raises(
        SpecMismatchError, match=r"round 1: client 2: .*'kernel': expected float32\[3, 1\]"
    ):
        legacy(on_spec_mismatch="fail").aggregate_fit(
            1, [(proxy("1"), fit_res(good, 10)), (proxy("2"), fit_res(other, 10))], []
        )


# -- transactions -----------------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [MemoryError, OverflowError, Boom])
@pytest.mark.parametrize("api", ["legacy", "message"])
def test_any_failure_during_aggregation_restores_the_state_bit_for_bit(
    error: type[BaseException], api: str, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(8)
    calls = {"n": 0}

    def metrics_fn(results: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise error("metric aggregation blew up")
        return {}

    build = legacy if api == "legacy" else message
    strategy = build(fit_metrics_aggregation_fn=metrics_fn)
    items = [(n, weights(rng), delta(weights(rng))) for n in (1, 2)]

    def run(rnd: int) -> Any:
        if api == "legacy":
            return run_legacy_round(
                strategy, rnd, [(str(n), fit_res(w, 10, a)) for n, w, a in items]
            )
        return strategy.aggregate_train(rnd, [reply(n, w, 10, a) for n, w, a in items])

    run(1)
    before = state_bytes(strategy)
    with caplog.at_level(logging.ERROR, logger="flwr"):
        assert run(2)[0] is None
    assert "round 2: aggregation failed, server state restored, round skipped" in caplog.text
    assert state_bytes(strategy) == before
    strict = build(fit_metrics_aggregation_fn=metrics_fn, on_round_error="fail")
    calls["n"] = 1
    with pytest.raises(AggregationError, match="metric aggregation blew up"):
        strict.aggregate_fit(
            1, [(proxy("1"), fit_res(items[0][1], 10, items[0][2]))], []
        ) if api == "legacy" else strict.aggregate_train(
            1, [reply(1, items[0][1], 10, items[0][2])]
        )


def test_a_non_finite_new_state_is_rolled_back(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(9)
    strategy = DeclearnStrategy(
        model=LinearModel(3, dtype="float32"),
        client_optimizer=Optimizer(0.1),
        server_optimizer=Optimizer(1e30),
    )
    before = state_bytes(strategy)
    big = {name: np.full(shape, 1e15, "float32") for name, shape in SPECS.items()}
    with caplog.at_level(logging.ERROR, logger="flwr"):
        assert (
            run_legacy_round(
                strategy, 1, [("1", fit_res(big, 10)), ("2", fit_res(weights(rng), 10))]
            )[0]
            is None
        )
    assert "is not finite" in caplog.text
    assert state_bytes(strategy) == before


# -- robust aggregators -----------------------------------------------------------------------


def test_aggregators_are_selected_by_name_through_the_registry() -> None:
    assert type(build_aggregator(None)).name == "mean"
    assert build_aggregator("median").name == "median"
    assert build_aggregator(("trimmed-mean", {"beta": 0.2})).get_config() == {"beta": 0.2}
    assert build_aggregator(["clipped-mean", {"max_norm": 2.0}]).get_config() == {
        "max_norm": 2.0,
        "weighted": False,
    }
    assert isinstance(Aggregator.from_specs("median", {}), Aggregator)
    with pytest.raises(KeyError):
        build_aggregator("krum-ish")
    with pytest.raises(ValueError, match="beta"):
        build_aggregator(("trimmed-mean", {"beta": 0.5}))
    with pytest.raises(ValueError, match="max_norm"):
        build_aggregator(("clipped-mean", {"max_norm": -1.0}))


@pytest.mark.parametrize(
    ("spec", "flower"),
    [("median", FedMedian()), (("trimmed-mean", {"beta": 0.2}), FedTrimmedAvg(beta=0.2))],
)
def test_median_and_trimmed_mean_equal_flowers_own(spec: Any, flower: Any) -> None:
    rng = np.random.default_rng(10)
    results = [
        (proxy(str(i + 1)), fit_res(weights(rng), int(rng.integers(1, 50)))) for i in range(7)
    ]
    ours, _ = DeclearnStrategy(
        model=LinearModel(3, dtype="float32"), client_optimizer=Optimizer(0.1), aggregator=spec
    ).aggregate_fit(1, results, [])
    theirs, _ = flower.aggregate_fit(1, results, [])
    for got, exp in zip(parameters_to_ndarrays(ours), parameters_to_ndarrays(theirs), strict=True):
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-6)


def test_clipped_mean_bounds_each_clients_update() -> None:
    strategy = DeclearnStrategy(
        initial_weights={"w": np.zeros(4, "float64")},
        client_optimizer=Optimizer(0.1),
        aggregator=("clipped-mean", {"max_norm": 1.0}),
    )
    honest = {"w": np.full(4, 0.1)}  # norm 0.2: kept as is
    attacker = {"w": np.full(4, 1e6)}  # norm 2e6: scaled to norm 1
    strategy.aggregate_fit(
        1,
        [
            (
                proxy("1"),
                FitRes(Status(Code.OK, ""), ndarrays_to_parameters([honest["w"]]), 10, {}),
            ),
            (
                proxy("2"),
                FitRes(Status(Code.OK, ""), ndarrays_to_parameters([attacker["w"]]), 10, {}),
            ),
        ],
        [],
    )
    np.testing.assert_allclose(strategy.global_weights["w"], (0.1 + 0.5) / 2, rtol=1e-12)
