"""Fuzzing: corrupted client results never escape the strategies, and never change the state.

Each case runs one round of both strategies with two honest clients and one
corrupted result, next to a reference run without the corrupted one. No
exception may escape `aggregate_fit` / `aggregate_train`; when the corrupted
client is rejected (one log line names it), the weights and the server
Optimizer state are bit-identical to the reference's.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flwr_declearn.flower import DeclearnMessageStrategy, DeclearnStrategy, wire
from flwr_declearn.flower._core import find_non_finite
from flwr_declearn.flower._records import arrays_to_record
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, LocalClientProxy, make_context

SPECS = {"bias": ((1,), "float32"), "kernel": ((3, 1), "float32")}
FUZZ = settings(
    max_examples=700,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

# -- corrupted values ---------------------------------------------------------------------------

floats = st.sampled_from([0.0, -1.5, 1e-3, 1e30, -1e30, np.inf, -np.inf, np.nan, 3.4e38, 1e15])
shapes = st.sampled_from([(1,), (3, 1), (1, 3), (3,), (), (2**40,), (0,), (3, 1, 1)])
dtypes = st.sampled_from(["float32", "float64", "float16", "int64", "bool", "uint8"])
names = st.sampled_from(["bias", "kernel", "other", ""])


@st.composite
def arrays(draw: Any) -> np.ndarray:
    shape = draw(shapes.filter(lambda s: s != (2**40,)))
    value = draw(floats)
    dtype = draw(dtypes)
    with np.errstate(all="ignore"):
        return np.full(shape, value).astype(dtype)


@st.composite
def named_arrays(draw: Any) -> dict[str, np.ndarray]:
    good = {"bias": np.zeros(1, "float32"), "kernel": np.zeros((3, 1), "float32")}
    out = dict(good)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(names)
        if draw(st.booleans()):
            out.pop(key, None)
        else:
            out[key] = draw(arrays())
    return out


def npy(shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


@st.composite
def tensors(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=64))
    if kind == 1:
        return npy(draw(shapes), draw(dtypes), draw(st.binary(max_size=32)))
    buffer = io.BytesIO()
    np.save(buffer, draw(arrays()))
    data = buffer.getvalue()
    if kind == 3 and data:
        cut = draw(st.integers(0, len(data) - 1))
        return data[:cut] + bytes([data[cut] ^ 0xFF]) + data[cut + 1 :]
    return data


@st.composite
def aux_values(draw: Any) -> Any:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(floats)
    if kind == 1:
        return NumpyVector(draw(named_arrays()))
    if kind == 2:
        return draw(st.sampled_from(["x", None, [1, 2], {"a": 1}, True, 2**62]))
    value = draw(floats)
    with np.errstate(all="ignore"):
        return NumpyVector(
            {"bias": np.full(1, value, "float32"), "kernel": np.full((3, 1), value, "float32")}
        )


@st.composite
def aux_payloads(draw: Any) -> Any:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=48))
    if kind == 1:
        data = wire.encode({"scaffold": {"delta": NumpyVector(draw(named_arrays()))}})
        cut = draw(st.integers(0, len(data) - 1))
        return data[:cut] + bytes([data[cut] ^ draw(st.integers(1, 255))]) + data[cut + 1 :]
    keys = draw(st.lists(st.sampled_from(["delta", "state", "x"]), max_size=2, unique=True))
    aux_name = draw(st.sampled_from(["scaffold", "scaffold", "adam", ""]))
    return wire.encode({aux_name: {key: draw(aux_values()) for key in keys}})


counts = st.one_of(
    st.integers(-5, 40),
    st.sampled_from([2**31, 2**62, 2**63 - 1, 10**9 + 1]),
    st.sampled_from([1.7e308, 1.5, 10.0, float("nan"), float("inf"), -0.0]),
)
legacy_counts = st.one_of(counts, st.sampled_from([None, "10", True, b"1", [3]]))


# -- harness ------------------------------------------------------------------------------------


def options() -> dict[str, Any]:
    return {
        "model": LinearModel(3, dtype="float32"),
        "client_optimizer": Optimizer(0.05, modules=["scaffold-client"]),
        "server_optimizer": Optimizer(0.5, modules=["scaffold-server", "adam"]),
    }


HONEST = [
    (
        n,
        {"bias": np.full(1, 0.1 * n, "float32"), "kernel": np.full((3, 1), -0.2 * n, "float32")},
        wire.encode(
            {
                "scaffold": {
                    "delta": NumpyVector(
                        {
                            "bias": np.full(1, 0.01 * n, "float32"),
                            "kernel": np.full((3, 1), 0.02, "float32"),
                        }
                    )
                }
            }
        ),
    )
    for n in (1, 2)
]


def state_bytes(strategy: Any) -> bytes:
    core = strategy.core
    return wire.encode([core.get_weights(), core.server_optimizer.get_state(), core.server_round])


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def flwr_warnings() -> Iterator[_Collect]:
    handler = _Collect()
    logger = logging.getLogger("flwr")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def fit_res(arrays: list[bytes] | dict[str, np.ndarray], count: Any, aux: Any) -> FitRes:
    if isinstance(arrays, dict):
        params = ndarrays_to_parameters([arrays[k] for k in sorted(arrays)])
    else:
        params = Parameters(tensors=arrays, tensor_type="numpy.ndarray")
    metrics = {} if aux is None else {wire.KEY_AUX_VAR: aux}
    return FitRes(Status(Code.OK, ""), params, count, metrics)


def proxy(cid: str) -> LocalClientProxy:
    return LocalClientProxy(cid, lambda ctx: None, make_context(int(cid)))


def check_round(reference: Any, subject: Any, lines: list[str], bad: str) -> None:
    rejected = [line for line in lines if f"client {bad}:" in line]
    assert len(rejected) <= 1, rejected
    if rejected:
        assert state_bytes(subject) == state_bytes(reference)
    core = subject.core
    assert find_non_finite(core.get_weights()) is None
    assert find_non_finite(core.server_optimizer.get_state()) is None


# -- properties ---------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=200))
def test_decoding_arbitrary_bytes_only_raises_value_errors(data: bytes) -> None:
    for decode in (
        lambda: wire.decode(data),
        lambda: wire.decode_npy(data, (3, 1), "float32"),
    ):
        try:
            decode()
        except ValueError:
            pass


@FUZZ
@given(
    tensors_=st.one_of(
        st.lists(tensors(), min_size=0, max_size=3), named_arrays().map(lambda d: d)
    ),
    count=legacy_counts,
    aux=st.one_of(st.none(), aux_payloads(), st.sampled_from([1, "x", 2.5])),
)
def test_legacy_strategy_survives_corrupted_results(tensors_: Any, count: Any, aux: Any) -> None:
    reference, subject = DeclearnStrategy(**options()), DeclearnStrategy(**options())
    honest = [(proxy(str(n)), fit_res(w, 10, a)) for n, w, a in HONEST]
    reference.aggregate_fit(1, honest, [])
    with flwr_warnings() as log:
        subject.aggregate_fit(1, [*honest, (proxy("3"), fit_res(tensors_, count, aux))], [])
    check_round(reference, subject, log.lines, "3")


@st.composite
def array_records(draw: Any) -> ArrayRecord:
    if draw(st.booleans()):
        return arrays_to_record(draw(named_arrays()))
    record = ArrayRecord()
    for name in ("bias", "kernel"):
        spec_shape, dtype = SPECS[name]
        shape = draw(st.one_of(st.just(spec_shape), shapes))
        declared = draw(st.one_of(st.just(shape), shapes))
        record[name] = Array(
            dtype=draw(st.one_of(st.just(dtype), dtypes)),
            shape=shape,
            stype=draw(st.sampled_from(["numpy.ndarray", "numpy.ndarray", "torch.Tensor"])),
            data=npy(declared, dtype, draw(st.binary(max_size=16))),
        )
    return record


def reply(node: int, record: ArrayRecord, count: Any, aux: Any) -> Message:
    content = RecordDict({"arrays": record, "metrics": MetricRecord({"num-examples": count})})
    if aux is not None:
        content["declearn"] = ConfigRecord({wire.KEY_AUX_VAR: aux})
    msg = Message(content, reply_to=Message(RecordDict(), dst_node_id=node, message_type="train"))
    msg.metadata.__dict__["_src_node_id"] = node
    return msg


@FUZZ
@given(
    record=array_records(),
    count=counts,
    aux=st.one_of(st.none(), aux_payloads(), st.sampled_from([1, "x", 2.5])),
    duplicate=st.booleans(),
)
def test_message_strategy_survives_corrupted_replies(
    record: ArrayRecord, count: Any, aux: Any, duplicate: bool
) -> None:
    reference = DeclearnMessageStrategy(**options())
    subject = DeclearnMessageStrategy(**options())
    honest = [reply(n, arrays_to_record(w), 10, a) for n, w, a in HONEST]
    reference.aggregate_train(1, honest)
    bad = reply(2 if duplicate else 3, record, count, aux)
    with flwr_warnings() as log:
        subject.aggregate_train(1, [*honest, bad])
    if duplicate:  # a second reply of node 2 is always dropped
        assert any("client 2: duplicate reply" in line for line in log.lines)
        assert state_bytes(subject) == state_bytes(reference)
    else:
        check_round(reference, subject, log.lines, "3")
