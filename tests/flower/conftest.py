"""Fixtures for the Flower-layer tests: a numpy linear model and in-process Flower plumbing.

Nothing here mocks Flower: rounds run through Flower's own `Server` (legacy
API) or Flower's App classes (Message API). Transport is replaced by an
in-process `Grid` / `ClientProxy` that serializes every message and every
node Context with Flower's own protobuf serde, as the SuperLink/SuperNode do.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Self

import numpy as np
import pytest
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import (
    Code,
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    GetPropertiesRes,
    ReconnectIns,
    Status,
    serde,
)
from flwr.proto.message_pb2 import Context as ProtoContext  # pylint: disable=E0611
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=E0611
from flwr.proto.transport_pb2 import ClientMessage, ServerMessage  # pylint: disable=E0611
from flwr.server.client_proxy import ClientProxy
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from flwr_declearn.data import Batch, InMemoryDataset
from flwr_declearn.model.api import Model
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.utils import DevicePolicy

# -- a tiny numpy Model ------------------------------------------------------------------------


class LinearModel(Model[NumpyVector]):
    """Linear regression `y = x @ kernel + bias` with a squared-error loss, in numpy.

    With `with_stats=True` it also holds a non-trainable "input_mean" weight
    (a running mean of the inputs, like batch-norm statistics) updated by
    every gradient computation.
    """

    def __init__(
        self, n_features: int | None = None, dtype: str = "float64", with_stats: bool = False
    ) -> None:
        super().__init__(None)
        self.n_features = n_features
        self.dtype = np.dtype(dtype)
        self.with_stats = with_stats
        self._weights: dict[str, np.ndarray] = {}
        if n_features is not None:
            self._build(n_features)

    def _build(self, n_features: int) -> None:
        self.n_features = n_features
        self._weights = {
            "kernel": np.zeros((n_features, 1), dtype=self.dtype),
            "bias": np.zeros((1,), dtype=self.dtype),
        }
        if self.with_stats:
            self._weights["input_mean"] = np.zeros((n_features,), dtype=self.dtype)

    @property
    def trainable(self) -> list[str]:
        return ["bias", "kernel"]

    @property
    def device_policy(self) -> DevicePolicy:
        return DevicePolicy(gpu=False, idx=None)

    @property
    def required_data_info(self) -> set[str]:
        return set() if self._weights else {"features_shape"}

    def initialize(self, data_info: dict[str, Any]) -> None:
        if not self._weights:
            (n_features,) = data_info["features_shape"]
            self._build(int(n_features))

    def get_config(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "dtype": self.dtype.name,
            "with_stats": self.with_stats,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    def get_weights(self, trainable: bool = False) -> NumpyVector:
        names = self.trainable if trainable else list(self._weights)
        return NumpyVector({name: self._weights[name].copy() for name in names})

    def set_weights(self, weights: NumpyVector, trainable: bool = False) -> None:
        if not isinstance(weights, NumpyVector):
            raise TypeError("LinearModel takes NumpyVector weights.")
        expected = set(self.trainable if trainable else self._weights)
        if set(weights.coefs) != expected:
            raise KeyError(f"Expected weights {sorted(expected)}, got {sorted(weights.coefs)}.")
        for name, value in weights.coefs.items():
            self._weights[name] = np.array(value, dtype=self.dtype)

    def _predict(self, inputs: np.ndarray) -> np.ndarray:
        return inputs @ self._weights["kernel"] + self._weights["bias"]

    def compute_batch_gradients(self, batch: Batch, max_norm: float | None = None) -> NumpyVector:
        inputs, y_true, s_wght = batch
        inputs = np.asarray(inputs, dtype=self.dtype)
        y_true = np.asarray(y_true, dtype=self.dtype).reshape(-1, 1)
        weights = np.ones(len(inputs)) if s_wght is None else np.asarray(s_wght, dtype=float)
        errors = self._predict(inputs) - y_true  # (n, 1)
        grad_k = 2 * errors * inputs  # per-sample kernel gradients (n, d)
        grad_b = 2 * errors[:, 0]  # per-sample bias gradients (n,)
        if max_norm is not None:
            norms = np.sqrt((grad_k**2).sum(axis=1) + grad_b**2)
            scale = np.minimum(1.0, max_norm / np.maximum(norms, 1e-12))
            grad_k, grad_b = grad_k * scale[:, None], grad_b * scale
        total = weights.sum()
        self._loss_history.append(float((weights * errors[:, 0] ** 2).sum() / total))
        if self.with_stats:
            stats = self._weights["input_mean"]
            self._weights["input_mean"] = (0.9 * stats + 0.1 * inputs.mean(axis=0)).astype(
                self.dtype
            )
        return NumpyVector(
            {
                "bias": ((weights @ grad_b) / total).reshape(1).astype(self.dtype),
                "kernel": ((weights @ grad_k) / total).reshape(-1, 1).astype(self.dtype),
            }
        )

    def apply_updates(self, updates: NumpyVector, scale: float = 1.0) -> None:
        for name, value in updates.coefs.items():
            self._weights[name] = (self._weights[name] + scale * value).astype(self.dtype)

    def compute_batch_predictions(
        self, batch: Batch
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        inputs, y_true, s_wght = batch
        pred = self._predict(np.asarray(inputs, dtype=self.dtype))
        return np.asarray(y_true).reshape(-1, 1), pred, s_wght

    def loss_function(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        diff = np.asarray(y_pred, dtype=float).reshape(len(y_true), -1) - np.asarray(
            y_true, dtype=float
        ).reshape(len(y_true), -1)
        return (diff**2).mean(axis=1)

    def update_device_policy(self, policy: DevicePolicy | None = None) -> None:
        """Numpy runs on the CPU only."""


TRUE_KERNEL = np.array([1.5, -2.0, 0.5])
TRUE_BIAS = 0.3


def regression_data(n_samples: int, seed: int, shift: float = 0.0) -> InMemoryDataset:
    """Noisy samples of `y = x @ TRUE_KERNEL + TRUE_BIAS`, inputs centred on `shift`."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(loc=shift, size=(n_samples, len(TRUE_KERNEL)))
    target = inputs @ TRUE_KERNEL + TRUE_BIAS + 0.01 * rng.normal(size=n_samples)
    return InMemoryDataset(inputs, target, seed=seed)


def make_context(node_id: int, partition_id: int = 0, **run_config: Any) -> Context:
    """A node Context as a SuperNode builds it, with an empty state."""
    return Context(
        run_id=1,
        node_id=node_id,
        node_config={"partition-id": partition_id, "num-partitions": 1},
        state=RecordDict(),
        run_config=dict(run_config),
    )


# -- legacy API: in-process ClientProxy driven by Flower's Server ------------------------------


def _roundtrip_context(context: Context) -> Context:
    """Serialize and deserialize a Context as a SuperNode does between messages."""
    blob = serde.context_to_proto(context).SerializeToString()
    proto = ProtoContext()
    proto.ParseFromString(blob)
    return serde.context_from_proto(proto)


class LocalClientProxy(ClientProxy):
    """ClientProxy running a client in-process; messages and Context cross a protobuf wire.

    `client_fn(context)` builds a fresh client for every message, as Flower does.
    """

    def __init__(self, cid: str, client_fn: Callable[[Context], Any], context: Context) -> None:
        super().__init__(cid)
        self.node_id = int(cid)
        self.client_fn = client_fn
        self.context = context
        self.calls: list[str] = []

    def _client(self) -> Any:
        self.context = _roundtrip_context(self.context)
        return self.client_fn(self.context).to_client()

    def fit(self, ins: FitIns, timeout: float | None, group_id: int | None) -> FitRes:
        self.calls.append("fit")
        msg = ServerMessage.FitIns()
        msg.ParseFromString(serde.fit_ins_to_proto(ins).SerializeToString())
        res = self._client().fit(serde.fit_ins_from_proto(msg))
        out = ClientMessage.FitRes()
        out.ParseFromString(serde.fit_res_to_proto(res).SerializeToString())
        return serde.fit_res_from_proto(out)

    def evaluate(
        self, ins: EvaluateIns, timeout: float | None, group_id: int | None
    ) -> EvaluateRes:
        self.calls.append("evaluate")
        msg = ServerMessage.EvaluateIns()
        msg.ParseFromString(serde.evaluate_ins_to_proto(ins).SerializeToString())
        res = self._client().evaluate(serde.evaluate_ins_from_proto(msg))
        out = ClientMessage.EvaluateRes()
        out.ParseFromString(serde.evaluate_res_to_proto(res).SerializeToString())
        return serde.evaluate_res_from_proto(out)

    def get_parameters(
        self, ins: GetParametersIns, timeout: float | None, group_id: int | None
    ) -> GetParametersRes:
        return self._client().get_parameters(ins)  # type: ignore[no-any-return]

    def get_properties(
        self, ins: GetPropertiesIns, timeout: float | None, group_id: int | None
    ) -> GetPropertiesRes:
        return GetPropertiesRes(Status(Code.OK, ""), {})

    def reconnect(
        self, ins: ReconnectIns, timeout: float | None, group_id: int | None
    ) -> DisconnectRes:
        return DisconnectRes(reason="")


def run_legacy(strategy: Any, proxies: Iterable[ClientProxy], num_rounds: int) -> Any:
    """Run `num_rounds` rounds with Flower's own `Server`; return its History."""
    from flwr.server import Server, SimpleClientManager

    manager = SimpleClientManager()
    for proxy in proxies:
        manager.register(proxy)
    server = Server(client_manager=manager, strategy=strategy)
    history, _ = server.fit(num_rounds=num_rounds, timeout=None)
    return history


# -- Message API: an in-process Grid ------------------------------------------------------------


def _roundtrip_message(message: Message) -> Message:
    proto = ProtoMessage()
    proto.ParseFromString(serde.message_to_proto(message).SerializeToString())
    return serde.message_from_proto(proto)


class LocalGrid(Grid):
    """A Grid delivering Messages to a ClientApp in-process, over a protobuf round trip.

    Each node keeps its Context (serialized between messages, as a SuperNode
    does). Exceptions raised by the ClientApp become error replies.

    Parameters
    ----------
    client_app:
        The ClientApp every node runs.
    contexts:
        One Context per node, keyed by node id.
    """

    def __init__(self, client_app: ClientApp, contexts: dict[int, Context]) -> None:
        self.client_app = client_app
        self.contexts = {node: _roundtrip_context(ctx) for node, ctx in contexts.items()}
        self._run = Run.create_empty(run_id=1)
        self._replies: dict[str, Message] = {}
        self.sent: list[Message] = []
        self._ids = itertools.count()

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            delivered = _roundtrip_message(message)
            self.sent.append(delivered)
            node = delivered.metadata.dst_node_id
            context = self.contexts[node]
            try:
                reply = self.client_app(delivered, context)
            except Exception as exc:  # a SuperNode turns these into error replies
                reply = Message(Error(code=0, reason=repr(exc)), reply_to=delivered)
            self.contexts[node] = _roundtrip_context(context)
            reply.metadata.__dict__["_message_id"] = f"reply-{next(self._ids)}"
            self._replies[delivered.metadata.message_id] = _roundtrip_message(reply)
            ids.append(delivered.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(mid) for mid in message_ids if mid in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def server_context(**run_config: Any) -> Context:
    """The Context a ServerApp receives."""
    return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)


@pytest.fixture
def linear_model() -> LinearModel:
    return LinearModel(n_features=len(TRUE_KERNEL))


@pytest.fixture(autouse=True)
def server_task_identity() -> Iterator[None]:
    """Set the identity that Flower's ServerApp runtime gives the server process."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
