"""The Message API apps on Flower's real Ray simulation engine (digits, 4 non-IID SuperNodes).

`make_server_app` runs a `DeclearnMessageStrategy` (SCAFFOLD) and
`make_client_app` the `DeclearnClient`s, in ONE `run_simulation` (starting
Ray is the expensive part). A Flower mod on the ClientApp reports, with each
train reply, a digest of the node's flwr_declearn state in `context.state`
before and after the handler, so that the test sees whether the state the
engine hands back in round r is the one the client saved in round r - 1.

The data, model and non-IID split are the quickstart example's
(`examples/quickstart/quickstart/task.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("ray")

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord
from flwr.clientapp.typing import ClientAppCallable

from flwr_declearn.flower import (
    STATE_KEY,
    DeclearnClient,
    DeclearnMessageStrategy,
    ModelEvaluator,
    make_client_app,
    make_server_app,
)
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.optimizer.modules import ScaffoldServerModule
from tests._quickstart import SEED, build_model, load_splits, node_dataset, simulate

pytestmark = pytest.mark.slow

N_CLIENTS = 4
ROUNDS = 6
PROBE_KEY = "e2e.probe"


# -- client side ---------------------------------------------------------------------------------


def client_fn(context: Context) -> DeclearnClient:
    """DeclearnClient on this node's digits shard; the server sends the Optimizer config."""
    return DeclearnClient(build_model(SEED), node_dataset(context), context)


def _digest(record: Any) -> str:
    """Digest of a node's client-state record ("" when there is none)."""
    if record is None:
        return ""
    return hashlib.sha256(repr(sorted(record.items())).encode()).hexdigest()[:16]


def state_probe(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower mod: add the node's state digests (before, after) to each train reply."""
    state_in = _digest(context.state.get(STATE_KEY))
    reply = call_next(message, context)
    if message.metadata.message_type == MessageType.TRAIN and not reply.has_error():
        reply.content[PROBE_KEY] = ConfigRecord(
            {
                "state_in": state_in,
                "state_out": _digest(context.state.get(STATE_KEY)),
                "partition": int(context.node_config["partition-id"]),
            }
        )
    return reply


# -- server side ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    """What the server saw."""

    accuracy: dict[int, float] = dataclasses.field(default_factory=dict)
    train: dict[int, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    train_metrics: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    client_eval: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    scaffold_clients: set[str] = dataclasses.field(default_factory=set)


def _reply_info(msg: Message) -> dict[str, Any]:
    if msg.has_error():
        return {"error": msg.error.reason}
    probe = msg.content.get(PROBE_KEY)
    info: dict[str, Any] = dict(probe) if isinstance(probe, ConfigRecord) else {}
    info["node"] = msg.metadata.src_node_id
    return info


class RecordingStrategy(DeclearnMessageStrategy):
    """DeclearnMessageStrategy that records the replies it receives and its results."""

    def __init__(self, record: Record, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self.record.train[server_round] = [_reply_info(msg) for msg in replies]
        arrays, metrics = super().aggregate_train(server_round, replies)
        if metrics is not None:
            self.record.train_metrics[server_round] = dict(metrics)  # type: ignore[arg-type]
        scaffold = self.core.server_optimizer.modules[0]
        assert isinstance(scaffold, ScaffoldServerModule)
        self.record.scaffold_clients = set(scaffold.clients)
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        result = super().aggregate_evaluate(server_round, replies)
        if result is not None:
            self.record.client_eval[server_round] = dict(result)  # type: ignore[arg-type]
        return result


def make_strategy(record: Record) -> RecordingStrategy:
    evaluator = ModelEvaluator(build_model(SEED), load_splits(SEED)[1])

    def evaluate(server_round: int, weights: dict[str, np.ndarray]) -> Any:
        loss, metrics = evaluator(server_round, weights)
        record.accuracy[server_round] = float(metrics["accuracy"])
        return loss, metrics

    return RecordingStrategy(
        record,
        model=build_model(SEED),
        client_optimizer={"lrate": 0.2, "modules": [["scaffold-client", {}]]},
        server_optimizer=Optimizer(lrate=1.0, modules=["scaffold-server"]),
        train_config={"batch_size": 32, "n_steps": 20},
        min_train_nodes=N_CLIENTS,
        min_evaluate_nodes=N_CLIENTS,
        min_available_nodes=N_CLIENTS,
        evaluate_fn=evaluate,
    )


@pytest.fixture(scope="module")
def record() -> Record:
    out = Record()
    start = time.perf_counter()
    simulate(
        make_server_app(lambda _: make_strategy(out), num_rounds=ROUNDS),
        make_client_app(client_fn, mods=[state_probe]),
        N_CLIENTS,
    )
    accs = [round(out.accuracy[r], 3) for r in sorted(out.accuracy)]
    print(f"\nsimulation: {time.perf_counter() - start:.1f}s, accuracy by round {accs}")
    assert sorted(out.train) == list(range(1, ROUNDS + 1)), "the simulation did not complete"
    return out


# -- tests ---------------------------------------------------------------------------------------


def test_scaffold_through_the_apps_learns_digits(record: Record) -> None:
    assert record.accuracy[0] < 0.3  # the initial model is no better than chance
    assert record.accuracy[ROUNDS] >= 0.85, record.accuracy
    losses = [record.train_metrics[r]["train_loss"] for r in (1, ROUNDS)]
    assert losses[1] < losses[0], losses


def test_every_node_trains_in_every_round_without_errors(record: Record) -> None:
    for rnd, infos in record.train.items():
        assert not [info for info in infos if "error" in info], (rnd, infos)
        assert sorted(int(info["partition"]) for info in infos) == list(range(N_CLIENTS))


def test_scaffold_client_state_persists_across_rounds_in_context_state(record: Record) -> None:
    by_node: dict[int, dict[int, tuple[str, str]]] = {}
    for rnd, infos in record.train.items():
        for info in infos:
            by_node.setdefault(int(info["node"]), {})[rnd] = (
                str(info["state_in"]),
                str(info["state_out"]),
            )
    assert len(by_node) == N_CLIENTS
    # The server keeps one control variate per client, keyed by str(node_id).
    assert record.scaffold_clients == {str(node) for node in by_node}
    for node, rounds in by_node.items():
        assert rounds[1][0] == "", f"node {node} started with a state"
        outs = [rounds[r][1] for r in range(1, ROUNDS + 1)]
        assert all(outs) and len(set(outs)) == len(outs), "the state must change every round"
        for rnd in range(2, ROUNDS + 1):
            # What a node restores in round r is what it saved in round r - 1.
            assert rounds[rnd][0] == rounds[rnd - 1][1], (node, rnd)


def test_client_side_evaluation_runs_through_the_client_app(record: Record) -> None:
    assert sorted(record.client_eval) == list(range(1, ROUNDS + 1))
    final = record.client_eval[ROUNDS]
    assert {"loss", "accuracy"} <= set(final)
    assert final["accuracy"] >= 0.8, final
