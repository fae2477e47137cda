"""End-to-end tests on Flower's real Ray simulation engine (digits, 10 non-IID clients).

Starting Ray costs tens of seconds on a small machine, so all experiments
run in ONE simulation: a Message-API ServerApp runs them one after the
other, each through Flower's own legacy-strategy loop (`start_grid`) on the
same 10 simulated SuperNodes. A thin wrapper strategy tags every FitIns with
its experiment's name, and the ClientApp dispatches on that tag. Each
experiment's client state lives in its own namespace of the node's real
`context.state`, which Flower carries across rounds through the engine.

The data, model and non-IID split are the quickstart example's
(`examples/quickstart/quickstart/task.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("ray")

import torch
from flwr.app import Context, RecordDict
from flwr.client import Client, ClientApp, NumPyClient
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
)
from flwr.server import ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat import start_grid
from flwr.server.strategy import FedAdam, FedAvg, Strategy
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.flower import (
    STATE_KEY,
    DeclearnClient,
    DeclearnStrategy,
    ModelEvaluator,
)
from flwr_declearn.optimizer import Optimizer
from tests._quickstart import SEED, build_model, load_splits, node_dataset, simulate

pytestmark = pytest.mark.slow

N_CLIENTS = 10
BATCH_SIZE = 32
LOCAL_STEPS = 20
CLIENT_LR = 0.2
ACCURACY_ROUNDS = 15
COMPARE_ROUNDS = 3
TAG = "e2e.experiment"
_STATE_IN, _STATE_OUT, _PARTITION = "e2e.state_in", "e2e.state_out", "e2e.partition"

# FedAdam <-> declearn "adam" (see test_server_adam_matches_flower_fedadam_where_parameters_map).
FEDADAM_ETA = 0.05
FEDADAM_BETA_1 = 0.9
FEDADAM_BETA_2 = 0.0
FEDADAM_TAU = 1e-2


# -- client side: data and clients ------------------------------------------------------------


def declearn_client(context: Context) -> Client:
    """DeclearnClient on this node's shard; the server sends the Optimizer config."""
    return DeclearnClient(build_model(SEED), node_dataset(context), context).to_client()


class TorchSGDClient(NumPyClient):
    """Plain Flower client: torch.optim.SGD on the same batches as DeclearnClient.

    Parameters travel in the torch module's `state_dict` order.
    """

    def __init__(self, context: Context) -> None:
        self.module = build_model(SEED).get_wrapped_model()
        self.dataset = node_dataset(context)

    def get_parameters(self, config: dict[str, Scalar]) -> list[np.ndarray]:
        return [val.detach().cpu().numpy().copy() for val in self.module.state_dict().values()]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Scalar]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        with torch.no_grad():
            for tensor, value in zip(self.module.state_dict().values(), parameters, strict=True):
                tensor.copy_(torch.as_tensor(value))
        optim = torch.optim.SGD(self.module.parameters(), lr=CLIENT_LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        steps = 0
        while steps < LOCAL_STEPS:
            for inputs, target, _ in self.dataset.generate_batches(
                BATCH_SIZE, shuffle=True, drop_remainder=False
            ):
                optim.zero_grad()
                loss_fn(self.module(torch.as_tensor(inputs)), torch.as_tensor(target)).backward()
                optim.step()
                steps += 1
                if steps >= LOCAL_STEPS:
                    break
        return self.get_parameters({}), len(self.dataset), {}


def torch_sgd_client(context: Context) -> Client:
    return TorchSGDClient(context).to_client()


# -- experiments ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    """What the server saw during one experiment."""

    accuracy: dict[int, float] = dataclasses.field(default_factory=dict)
    weights: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    fit_metrics: dict[int, list[dict[str, Scalar]]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A strategy factory (server side), a client factory and a number of rounds."""

    name: str
    rounds: int
    make_strategy: Callable[[Record], Strategy]
    make_client: Callable[[Context], Client]


def _declearn_evaluate_fn(record: Record) -> Callable[..., tuple[float, dict[str, Scalar]]]:
    evaluator = ModelEvaluator(build_model(SEED), load_splits(SEED)[1])

    def evaluate(server_round: int, weights: dict[str, np.ndarray]) -> Any:
        record.weights[server_round] = {name: np.array(val) for name, val in weights.items()}
        loss, metrics = evaluator(server_round, weights)
        record.accuracy[server_round] = float(metrics["accuracy"])
        return loss, {"accuracy": metrics["accuracy"]}

    return evaluate


def _flower_evaluate_fn(record: Record) -> Callable[..., tuple[float, dict[str, Scalar]]]:
    """Flower-style evaluate_fn; NDArrays are in the torch `state_dict` order."""
    names = list(build_model(SEED).get_wrapped_model().state_dict())
    declearn_eval = _declearn_evaluate_fn(record)

    def evaluate(server_round: int, arrays: list[np.ndarray], config: Any) -> Any:
        named = {n: np.asarray(a, dtype=np.float32) for n, a in zip(names, arrays, strict=True)}
        return declearn_eval(server_round, named)

    return evaluate


def _initial_ndarrays() -> Parameters:
    module = build_model(SEED).get_wrapped_model()
    return ndarrays_to_parameters([v.detach().numpy() for v in module.state_dict().values()])


def _declearn_strategy(
    record: Record, client_optimizer: dict[str, Any], server_optimizer: Optimizer | None = None
) -> DeclearnStrategy:
    return DeclearnStrategy(
        model=build_model(SEED),
        client_optimizer=client_optimizer,
        server_optimizer=server_optimizer,
        train_config={"batch_size": BATCH_SIZE, "n_steps": LOCAL_STEPS},
        fraction_evaluate=0.0,
        min_fit_clients=N_CLIENTS,
        min_available_clients=N_CLIENTS,
        evaluate_fn=_declearn_evaluate_fn(record),
    )


def fedadam_mapped_adam() -> Optimizer:
    """declearn-style server Adam configured to compute exactly what flwr's FedAdam does.

    FedAdam (flwr 1.41, `flwr/server/strategy/fedadam.py`), with delta_t the
    FedAvg average minus the current weights and t the server round:
        m_t = beta_1 m + (1 - beta_1) delta_t;  v_t = beta_2 v + (1 - beta_2) delta_t**2
        w += eta * sqrt(1 - beta_2**(t+1)) / (1 - beta_1**(t+1)) * m_t / (sqrt(v_t) + tau)
    declearn "adam" on the pseudo-gradient g_t = -delta_t, with step k:
        w -= lrate * (m_t / (1 - beta_1**k)) / (sqrt(v_t / (1 - beta_2**k)) + eps)
    These agree with lrate = eta, same betas, the step counter one ahead of
    the round (k = t + 1: start the module at `steps=1`), and
    eps * sqrt(1 - beta_2**k) = tau: exact for every round only if beta_2 = 0
    (then eps = tau) or tau = eps = 0.
    """
    optim = Optimizer(
        lrate=FEDADAM_ETA,
        modules=[
            ("adam", {"beta_1": FEDADAM_BETA_1, "beta_2": FEDADAM_BETA_2, "eps": FEDADAM_TAU})
        ],
    )
    state = optim.get_state()
    state["modules"][0][1]["steps"] = 1
    optim.set_state(state)
    return optim


def _flower_strategy(record: Record, cls: type[FedAvg], **kwargs: Any) -> FedAvg:
    return cls(
        fraction_evaluate=0.0,
        min_fit_clients=N_CLIENTS,
        min_available_clients=N_CLIENTS,
        initial_parameters=_initial_ndarrays(),
        evaluate_fn=_flower_evaluate_fn(record),
        **kwargs,
    )


SGD = {"lrate": CLIENT_LR}
EXPERIMENTS = [
    Experiment(
        "fedavg", ACCURACY_ROUNDS, lambda rec: _declearn_strategy(rec, SGD), declearn_client
    ),
    Experiment(
        "flower-fedavg",
        COMPARE_ROUNDS,
        lambda rec: _flower_strategy(rec, FedAvg),
        torch_sgd_client,
    ),
    Experiment(
        "fedprox",
        ACCURACY_ROUNDS,
        lambda rec: _declearn_strategy(
            rec, {"lrate": CLIENT_LR, "regularizers": [["fedprox", {"alpha": 0.01}]]}
        ),
        declearn_client,
    ),
    Experiment(
        "scaffold",
        ACCURACY_ROUNDS,
        lambda rec: _declearn_strategy(
            rec,
            {"lrate": CLIENT_LR, "modules": [["scaffold-client", {}]]},
            Optimizer(lrate=1.0, modules=["scaffold-server"]),
        ),
        declearn_client,
    ),
    Experiment(
        "server-adam",
        ACCURACY_ROUNDS,
        lambda rec: _declearn_strategy(rec, SGD, Optimizer(lrate=0.05, modules=["adam"])),
        declearn_client,
    ),
    Experiment(
        "adam-as-fedadam",
        COMPARE_ROUNDS,
        lambda rec: _declearn_strategy(rec, SGD, fedadam_mapped_adam()),
        declearn_client,
    ),
    Experiment(
        "flower-fedadam",
        COMPARE_ROUNDS,
        lambda rec: _flower_strategy(
            rec,
            FedAdam,
            eta=FEDADAM_ETA,
            eta_l=CLIENT_LR,
            beta_1=FEDADAM_BETA_1,
            beta_2=FEDADAM_BETA_2,
            tau=FEDADAM_TAU,
        ),
        torch_sgd_client,
    ),
]
EXPERIMENTS_BY_NAME = {exp.name: exp for exp in EXPERIMENTS}


# -- plumbing: tag FitIns on the server, dispatch and namespace state on the client -------------


def _digest(record: Any) -> str:
    """Digest of a node's client-state record ("" when there is none)."""
    if record is None:
        return ""
    return hashlib.sha256(repr(sorted(record.items())).encode()).hexdigest()[:16]


class DispatchClient(Client):
    """Runs the experiment named in the instruction's config, on a namespaced node state."""

    def __init__(self, context: Context) -> None:
        self.node_context = context

    def _sub_context(self, name: str) -> Context:
        prefix = f"{name}:"
        state = RecordDict(
            {
                key[len(prefix) :]: rec
                for key, rec in self.node_context.state.items()
                if key.startswith(prefix)
            }
        )
        ctx = self.node_context
        return Context(ctx.run_id, ctx.node_id, ctx.node_config, state, ctx.run_config)

    def _store(self, name: str, sub: Context) -> None:
        for key, rec in sub.state.items():
            self.node_context.state[f"{name}:{key}"] = rec

    def fit(self, ins: FitIns) -> FitRes:
        name = str(ins.config[TAG])
        sub = self._sub_context(name)
        state_in = _digest(sub.state.get(STATE_KEY))
        res = EXPERIMENTS_BY_NAME[name].make_client(sub).fit(ins)
        self._store(name, sub)
        res.metrics[_STATE_IN] = state_in
        res.metrics[_STATE_OUT] = _digest(sub.state.get(STATE_KEY))
        res.metrics[_PARTITION] = int(self.node_context.node_config["partition-id"])
        return res

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        name = str(ins.config[TAG])
        return EXPERIMENTS_BY_NAME[name].make_client(self._sub_context(name)).evaluate(ins)


class TaggedStrategy(Strategy):
    """Delegates to `inner`, tagging instructions with the experiment name and recording."""

    def __init__(self, name: str, inner: Strategy, record: Record) -> None:
        self.name = name
        self.inner = inner
        self.record = record

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.inner.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        instructions = self.inner.configure_fit(server_round, parameters, client_manager)
        return [
            (proxy, FitIns(ins.parameters, {**ins.config, TAG: self.name}))
            for proxy, ins in instructions
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        assert not failures, f"{self.name}: round {server_round}: client failures {failures}"
        self.record.fit_metrics[server_round] = [dict(res.metrics) for _, res in results]
        for _, res in results:
            res.metrics = {k: v for k, v in res.metrics.items() if not k.startswith("e2e.")}
        return self.inner.aggregate_fit(server_round, results, failures)

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        instructions = self.inner.configure_evaluate(server_round, parameters, client_manager)
        return [
            (proxy, EvaluateIns(ins.parameters, {**ins.config, TAG: self.name}))
            for proxy, ins in instructions
        ]

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return self.inner.aggregate_evaluate(server_round, results, failures)

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        return self.inner.evaluate(server_round, parameters)


def run_all_experiments() -> dict[str, Record]:
    """Run every experiment in one Ray simulation of N_CLIENTS SuperNodes."""
    records: dict[str, Record] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        for exp in EXPERIMENTS:
            record = records[exp.name] = Record()
            start = time.perf_counter()
            strategy = TaggedStrategy(exp.name, exp.make_strategy(record), record)
            start_grid(grid=grid, strategy=strategy, config=ServerConfig(num_rounds=exp.rounds))
            record.seconds = time.perf_counter() - start

    client_app = ClientApp(client_fn=DispatchClient)
    simulate(server_app, client_app, N_CLIENTS)
    missing = [exp.name for exp in EXPERIMENTS if exp.rounds not in records[exp.name].weights]
    assert not missing, f"experiments that did not complete: {missing}"
    return records


@pytest.fixture(scope="module")
def records() -> dict[str, Record]:
    start = time.perf_counter()
    out = run_all_experiments()
    print(f"\nsimulation: {time.perf_counter() - start:.1f}s in all")
    for name, rec in out.items():
        accs = [round(rec.accuracy[r], 3) for r in sorted(rec.accuracy)]
        print(f"  {name}: {rec.seconds:.1f}s, accuracy by round {accs}")
    return out


# -- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "scaffold", "server-adam"])
def test_declearn_configs_reach_90_percent_digits_accuracy(
    records: dict[str, Record], name: str
) -> None:
    accuracy = records[name].accuracy
    assert accuracy[0] < 0.3  # the initial model is no better than chance
    assert accuracy[ACCURACY_ROUNDS] >= 0.90, accuracy


def test_every_client_trains_in_every_round(records: dict[str, Record]) -> None:
    for name, rec in records.items():
        for rnd in range(1, EXPERIMENTS_BY_NAME[name].rounds + 1):
            partitions = sorted(int(m[_PARTITION]) for m in rec.fit_metrics[rnd])
            assert partitions == list(range(N_CLIENTS)), (name, rnd)


def test_scaffold_client_state_persists_across_rounds_in_context_state(
    records: dict[str, Record],
) -> None:
    by_client: dict[int, dict[int, tuple[str, str]]] = {}
    for rnd, metrics in records["scaffold"].fit_metrics.items():
        for m in metrics:
            by_client.setdefault(int(m[_PARTITION]), {})[rnd] = (
                str(m[_STATE_IN]),
                str(m[_STATE_OUT]),
            )
    assert len(by_client) == N_CLIENTS
    for client, rounds in by_client.items():
        assert rounds[1][0] == "", f"client {client} started with a state"
        outs = [rounds[r][1] for r in range(1, ACCURACY_ROUNDS + 1)]
        assert all(outs) and len(set(outs)) == len(outs), "the state must change every round"
        for rnd in range(2, ACCURACY_ROUNDS + 1):
            # What a client restores in round r is what it saved in round r - 1.
            assert rounds[rnd][0] == rounds[rnd - 1][1], (client, rnd)


def _max_abs_diff(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> float:
    assert set(left) == set(right)
    return max(float(np.max(np.abs(left[k] - right[k]))) for k in left)


def test_default_config_matches_flower_fedavg_after_3_rounds(records: dict[str, Record]) -> None:
    ours = records["fedavg"].weights
    flower = records["flower-fedavg"].weights
    initial = build_model(SEED).get_weights().pack()
    assert _max_abs_diff(ours[0], initial) == 0.0
    assert _max_abs_diff(flower[0], initial) == 0.0
    assert _max_abs_diff(ours[1], ours[0]) > 1e-2  # training did move the weights
    diff = _max_abs_diff(ours[COMPARE_ROUNDS], flower[COMPARE_ROUNDS])
    print(f"\nmax |declearn - flower FedAvg| after {COMPARE_ROUNDS} rounds: {diff:.2e}")
    assert diff <= 1e-6


def test_server_adam_matches_flower_fedadam_where_parameters_map(
    records: dict[str, Record],
) -> None:
    """lrate=eta, same betas, eps=tau with beta_2=0, adam steps starting at 1 (see
    `fedadam_mapped_adam`)."""
    ours = records["adam-as-fedadam"].weights
    flower = records["flower-fedadam"].weights
    assert _max_abs_diff(ours[1], ours[0]) > 1e-2
    diffs = [_max_abs_diff(ours[rnd], flower[rnd]) for rnd in range(1, COMPARE_ROUNDS + 1)]
    print(f"\nmax |declearn adam - flower FedAdam| by round: {[f'{d:.2e}' for d in diffs]}")
    assert max(diffs) <= 1e-6, diffs


def test_scaffold_is_fedavg_until_control_variates_exist_then_departs(
    records: dict[str, Record],
) -> None:
    fedavg, scaffold = records["fedavg"].weights, records["scaffold"].weights
    # Round 1 starts from zero control variates: the corrections vanish.
    assert _max_abs_diff(scaffold[1], fedavg[1]) <= 1e-6
    assert _max_abs_diff(scaffold[2], fedavg[2]) > 1e-3


def test_fedprox_regularizer_changes_local_training(records: dict[str, Record]) -> None:
    assert _max_abs_diff(records["fedprox"].weights[1], records["fedavg"].weights[1]) > 1e-4
