"""Byzantine clients in Flower's Ray simulation: 10 clients, 2 of which send poison every round.

One Ray simulation (Message API, 10 SuperNodes, digits, SCAFFOLD + server
Adam) runs four experiments one after the other: a clean run, then the same
with partitions 0 and 1 poisoning every reply, under the default aggregator,
the coordinate-wise median and per-client norm clipping. Partition 0 sends
what the boundary checks must reject (a wrong-shaped SCAFFOLD delta in round
1, non-finite or huge aux-vars, 1e30 or NaN weights, example counts of 2**62
or 1.7e308); partition 1 sends a well-formed but adversarial update (its own
update reversed and scaled by 10) with an inflated example count, that only
a robust aggregator can resist.

Each experiment's client state lives in its own namespace of the node's real
`context.state`; honest nodes report whether their saved state is finite.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("ray")

from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.flower import (
    STATE_KEY,
    DeclearnClient,
    DeclearnMessageStrategy,
    ModelEvaluator,
    make_client_app,
    wire,
)
from flwr_declearn.flower._core import find_non_finite
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from tests._quickstart import SEED, build_model, load_splits, node_dataset, simulate

pytestmark = pytest.mark.slow

N_CLIENTS = 10
POISONERS = (0, 1)
ROUNDS = 8
TAG = "poison.experiment"
FINITE = "poison.state-finite"
TRAIN = {"batch_size": 32, "n_steps": 20}
CLIENT_OPTIM = {"lrate": 0.2, "modules": [["scaffold-client", {}]]}
EXPERIMENTS = {
    "clean": None,
    "poisoned-default": None,
    "poisoned-median": "median",
    "poisoned-clipped": ("clipped-mean", {"max_norm": 0.5}),
}


def client_fn(context: Context) -> DeclearnClient:
    return DeclearnClient(build_model(SEED), node_dataset(context), context)


HONEST = make_client_app(client_fn)


# -- poison ------------------------------------------------------------------------------------


def _scaffold(reply: RecordDict, delta: Any) -> None:
    reply["declearn"] = ConfigRecord(
        {wire.KEY_AUX_VAR: wire.encode({"scaffold": {"delta": delta}})}
    )


def _set_arrays(reply: RecordDict, arrays: dict[str, np.ndarray]) -> None:
    reply["arrays"] = ArrayRecord({name: Array(value) for name, value in arrays.items()})


def poison_rejectable(reply: RecordDict, rnd: int) -> None:
    """What the boundary checks must reject, a different fault every round."""
    arrays = {name: arr.numpy() for name, arr in reply["arrays"].items()}
    fault = rnd % 6
    if fault == 1:  # round 1: a wrong-shaped SCAFFOLD delta while the server state is empty
        _scaffold(reply, NumpyVector({k: np.zeros(v.size, v.dtype) for k, v in arrays.items()}))
    elif fault == 2:
        _scaffold(reply, NumpyVector({k: np.full_like(v, np.nan) for k, v in arrays.items()}))
    elif fault == 3:
        _set_arrays(reply, {k: np.full_like(v, 1e30) for k, v in arrays.items()})
    elif fault == 4:
        reply["metrics"] = MetricRecord({"num-examples": 2**62})
    elif fault == 5:
        _scaffold(reply, NumpyVector({k: np.full_like(v, 1e30) for k, v in arrays.items()}))
    else:
        reply["metrics"] = MetricRecord({"num-examples": 1.7e308})
        _set_arrays(reply, {k: np.full_like(v, np.inf) for k, v in arrays.items()})


def poison_adversarial(reply: RecordDict, request: Message) -> None:
    """A well-formed update pointing the other way, ten times too long, with 5x the examples."""
    start = {name: arr.numpy() for name, arr in request.content["arrays"].items()}
    trained = {name: arr.numpy() for name, arr in reply["arrays"].items()}
    _set_arrays(reply, {k: start[k] - 10.0 * (trained[k] - start[k]) for k in start})
    count = int(reply["metrics"]["num-examples"])  # type: ignore[arg-type]
    reply["metrics"] = MetricRecord({"num-examples": 5 * count})


# -- client app: namespaced state per experiment, poison on two partitions -----------------------


def _sub_context(context: Context, name: str) -> Context:
    prefix = f"{name}:"
    state = RecordDict(
        {k[len(prefix) :]: v for k, v in context.state.items() if k.startswith(prefix)}
    )
    return Context(context.run_id, context.node_id, context.node_config, state, context.run_config)


def _state_is_finite(context: Context) -> bool:
    record = context.state.get(STATE_KEY)
    if not isinstance(record, ConfigRecord):
        return True
    for value in record.values():
        if isinstance(value, bytes):
            try:
                decoded = wire.decode(value)
            except ValueError:
                continue  # not a wire payload (e.g. a config id)
            if find_non_finite(decoded) is not None:
                return False
    return True


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    name = str(msg.content["config"][TAG])
    sub = _sub_context(context, name)
    reply = HONEST(msg, sub)
    for key, rec in sub.state.items():
        context.state[f"{name}:{key}"] = rec
    partition = int(context.node_config["partition-id"])
    if reply.has_error():
        return reply
    content = reply.content
    if name != "clean" and partition == POISONERS[0]:
        poison_rejectable(content, int(msg.content["config"]["declearn.round"]))
    elif name != "clean" and partition == POISONERS[1]:
        poison_adversarial(content, msg)
    else:
        metrics = dict(content["metrics"])
        metrics[FINITE] = 1 if _state_is_finite(sub) else 0
        content["metrics"] = MetricRecord(metrics)
    return Message(content, reply_to=msg)


# -- server side ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    accuracy: dict[int, float] = dataclasses.field(default_factory=dict)
    server_finite: list[bool] = dataclasses.field(default_factory=list)
    clients_finite: list[float] = dataclasses.field(default_factory=list)


class Watched(DeclearnMessageStrategy):
    """Records whether the server state and the honest clients' states stay finite."""

    record: Record

    def aggregate_train(self, server_round: int, replies: Any) -> Any:
        replies = list(replies)
        for msg in replies:
            if not msg.has_error() and FINITE in msg.content.get("metrics", {}):
                self.record.clients_finite.append(float(msg.content["metrics"][FINITE]))
        out = super().aggregate_train(server_round, replies)
        state = [self.core.get_weights(), self.core.server_optimizer.get_state()]
        self.record.server_finite.append(find_non_finite(state) is None)
        return out


def run_experiments() -> dict[str, Record]:
    records: dict[str, Record] = {}
    evaluator = ModelEvaluator(build_model(SEED), load_splits(SEED)[1])
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        for name, aggregator in EXPERIMENTS.items():
            record = records[name] = Record()

            def evaluate(rnd: int, weights: dict[str, np.ndarray], record: Record = record) -> Any:
                loss, metrics = evaluator(rnd, weights)
                record.accuracy[rnd] = float(metrics["accuracy"])
                return loss, metrics

            strategy = Watched(
                model=build_model(SEED),
                client_optimizer=CLIENT_OPTIM,
                server_optimizer=Optimizer(0.05, modules=["scaffold-server", "adam"]),
                train_config=TRAIN,
                aggregator=aggregator,
                fraction_evaluate=0.0,
                min_train_nodes=N_CLIENTS,
                min_available_nodes=N_CLIENTS,
                evaluate_fn=evaluate,
            )
            strategy.record = record
            strategy.start(grid, num_rounds=ROUNDS, train_config=ConfigRecord({TAG: name}))

    simulate(server_app, client_app, N_CLIENTS)
    return records


@pytest.fixture(scope="module")
def records() -> dict[str, Record]:
    out = run_experiments()
    for name, rec in out.items():
        print(f"\n{name}: accuracy by round {[round(a, 3) for a in rec.accuracy.values()]}")
    return out


def test_every_experiment_completes_its_rounds(records: dict[str, Record]) -> None:
    for name, rec in records.items():
        assert sorted(rec.accuracy) == list(range(ROUNDS + 1)), name


def test_with_defaults_no_non_finite_value_enters_server_or_client_state(
    records: dict[str, Record],
) -> None:
    rec = records["poisoned-default"]
    assert len(rec.server_finite) == ROUNDS and all(rec.server_finite)
    assert len(rec.clients_finite) == ROUNDS * (N_CLIENTS - 2) and min(rec.clients_finite) == 1


@pytest.mark.parametrize("name", ["poisoned-median", "poisoned-clipped"])
def test_robust_aggregators_end_within_2_points_of_the_clean_run(
    records: dict[str, Record], name: str
) -> None:
    clean = records["clean"].accuracy[ROUNDS]
    assert clean >= 0.85
    assert records[name].accuracy[ROUNDS] >= clean - 0.02, (name, records[name].accuracy)
    assert all(records[name].server_finite)
