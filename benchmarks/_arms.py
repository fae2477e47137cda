"""Benchmark arms (Flower's built-in strategies vs flwr_declearn's) run on Flower's Ray engine.

Every run of a shoot-out goes through ONE `run_simulation` (starting Ray is
the expensive part): a Message API ServerApp runs the runs one after the
other, each by its own strategy's `start`, over the same simulated
SuperNodes. Each run tags its train messages with its id and its client-side
settings (task, learning rate, batch size, steps); one ClientApp dispatches
on that tag to either

- flwr_declearn's `make_client_app` (a `DeclearnClient`), or
- a plain Flower ClientApp: `torch.optim.SGD` on the same module, adding
  FedProx's proximal term `mu / 2 * ||w - w_global||^2` to the loss when the
  server sends "proximal-mu" (as Flower's FedProx expects of its clients).

Both draw the same batches: a node's k-th training message in a run seeds
its batch generator with (task seed, run seed, partition, k). Each run's client state
lives in its own namespace of the node's real `context.state` (other runs'
entries are dropped, so the state Flower carries stays one run's size).
The ServerApp lists the nodes in partition order (`PartitionOrderedGrid`), and
before each run reseeds Python's `random` with the run seed, from which both
Flower's and our strategies sample nodes: partial participation samples the
same nodes in every arm.

Arms and their hyper-parameters (`params`):

    flower-fedavg     Flower FedAvg
    flower-fedprox    Flower FedProx               mu
    flower-fedadam    Flower FedAdam               eta (beta_1 0.9, beta_2 0.99, tau 1e-3)
    flower-fedyogi    Flower FedYogi               eta (same defaults)
    flower-fedavgm    Flower FedAvgM               server_lr, momentum
    fedavg            ours, server Optimizer(lrate=1)
    fedprox           ours, client "fedprox" regularizer   mu (= its alpha)
    scaffold          ours, SCAFFOLD client/server modules  server_lr
    adam              ours, server "adam"          eta (beta_1 0.9, beta_2 0.99, eps 1e-3)
    yogi              ours, server "yogi"          eta (same)
    momentum          ours, server "momentum"      server_lr, momentum
    scaffold+adam     ours, SCAFFOLD + server adam eta
    adam-as-fedadam   ours, adam mapped onto FedAdam exactly (beta_2 0, eps = tau, steps from 1)

Reference arms (Flower's FedAvg with plain clients; the floor of float32 noise):

    flower-fedavg-permuted   Flower FedAvg aggregating the replies in a shuffled order
    fedavg-float64           FedAvg with the weighted mean summed in float64, rounded once

Twin check (`RunSpec.keep_weights` runs of an arm in `FLOWER_TWIN`): at every
round, the Flower strategy the arm maps onto aggregates the very replies our
strategy aggregates, from the same global weights (and, for FedAvgM / FedAdam,
its own momenta, fed the same replies every round); `RunResult.checks` holds
max |ours - Flower's| per round, and for the plain means the distance of each
from the float64 mean of those replies.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np
import torch
from _fedtasks import TaskSpec, build_model, build_module, evaluate_state, load_split
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, Strategy
from flwr.serverapp.strategy.fedopt import FedOpt
from flwr.simulation import run_simulation

from flwr_declearn.flower import DeclearnClient, DeclearnMessageStrategy, make_client_app
from flwr_declearn.optimizer import Optimizer

__all__ = [
    "FLOWER_ARMS",
    "FLOWER_TWIN",
    "OUR_ARMS",
    "REFERENCE_ARMS",
    "STATE_BYTES",
    "RoundCheck",
    "RunResult",
    "RunSpec",
    "build_strategy",
    "make_bench_client_app",
    "record_dict_bytes",
    "run_all",
]

TAG = "bench.run"
STATE_BYTES = "bench.state_bytes"  # reply metric: size of the run's client state after training
FLOWER_ARMS = (
    "flower-fedavg",
    "flower-fedprox",
    "flower-fedadam",
    "flower-fedyogi",
    "flower-fedavgm",
)
OUR_ARMS = (
    "fedavg",
    "fedprox",
    "scaffold",
    "adam",
    "yogi",
    "momentum",
    "scaffold+adam",
    "adam-as-fedadam",
)
REFERENCE_ARMS = ("flower-fedavg-permuted", "fedavg-float64")
# Our arm -> the Flower strategy computing the same thing (checked round by round).
FLOWER_TWIN = {
    "fedavg": "flower-fedavg",
    "fedprox": "flower-fedprox",
    "adam-as-fedadam": "flower-fedadam",
    "momentum": "flower-fedavgm",
}
ADAM_BETAS = (0.9, 0.99)
ADAM_TAU = 1e-3


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: an arm with its hyper-parameters on a task, with the shared local work."""

    arm: str
    params: tuple[tuple[str, float], ...]
    task: TaskSpec
    fraction: float  # of the clients trained per round
    rounds: int
    client_lr: float
    batch_size: int
    local_steps: int
    keep_weights: bool = False  # record the global weights of every round
    seed: int = 0  # node sampling and batch order (the split is the task's)

    @property
    def run_id(self) -> str:
        hps = ",".join(f"{k}={v:g}" for k, v in self.params)
        seed = f"/s{self.seed}" if self.seed else ""
        return f"{self.task.label}/p{self.fraction:g}{seed}/{self.arm}[{hps}]"

    @property
    def param(self) -> dict[str, float]:
        return dict(self.params)

    def client_config(self) -> dict[str, Any]:
        return {
            TAG: self.run_id,
            "bench.flower": self.arm in FLOWER_ARMS + REFERENCE_ARMS,
            "bench.lr": self.client_lr,
            "bench.batch_size": self.batch_size,
            "bench.steps": self.local_steps,
            "bench.seed": self.seed,
            **self.task.to_config(),
        }


class RoundCheck(NamedTuple):
    """One round of the twin check: max abs differences over all weights."""

    vs_flower: float  # ours vs Flower's twin on the same replies, from the same weights
    ours_vs_exact: float  # ours vs the float64 weighted mean of the replies (NaN: not a mean)
    flower_vs_exact: float  # Flower's twin vs that float64 mean
    ours_rounded: float  # share of the weights equal to that mean rounded once (NaN: not a mean)
    flower_rounded: float  # the same for Flower's twin


@dataclasses.dataclass
class RunResult:
    """Per-round server-side test metrics (round 0: the initial model) of one run."""

    spec: RunSpec
    accuracy: dict[int, float] = dataclasses.field(default_factory=dict)
    loss: dict[int, float] = dataclasses.field(default_factory=dict)
    weights: dict[int, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)
    checks: dict[int, RoundCheck] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


# -- client side ---------------------------------------------------------------------------------


def _partition(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _batch_seed(context: Context) -> int:
    task = TaskSpec.from_config(context.node_config)
    count = int(context.node_config["bench.count"])
    seed = int(context.node_config["bench.seed"])
    return 1_000_003 * task.seed + 100_003 * seed + 10_007 * _partition(context) + count


def _dataset(context: Context) -> Any:
    task = TaskSpec.from_config(context.node_config)
    return load_split(task).client_dataset(_partition(context), _batch_seed(context))


def _declearn_client(context: Context) -> DeclearnClient:
    task = TaskSpec.from_config(context.node_config)
    return DeclearnClient(build_model(task.kind, task.seed), _dataset(context), context)


_OURS = make_client_app(_declearn_client)


def _flower_train(message: Message, context: Context) -> Message:
    """Plain Flower ClientApp training: torch.optim.SGD (+ FedProx's proximal term)."""
    config = message.content["config"]
    task = TaskSpec.from_config(context.node_config)
    module = build_module(task.kind, task.seed)
    module.load_state_dict(message.content["arrays"].to_torch_state_dict())
    global_params = [p.detach().clone() for p in module.parameters()]
    mu = float(config.get("proximal-mu", 0.0))  # type: ignore[arg-type]
    optim = torch.optim.SGD(module.parameters(), lr=float(config["bench.lr"]))  # type: ignore[arg-type]
    loss_fn = torch.nn.CrossEntropyLoss()
    dataset = _dataset(context)
    n_steps, batch_size = int(config["bench.steps"]), int(config["bench.batch_size"])  # type: ignore[arg-type]
    steps, losses = 0, []
    while steps < n_steps:
        for inputs, target, _ in dataset.generate_batches(
            batch_size, shuffle=True, drop_remainder=False
        ):
            optim.zero_grad()
            loss = loss_fn(module(torch.as_tensor(inputs)), torch.as_tensor(target))
            losses.append(float(loss))
            if mu > 0.0:
                prox = sum(
                    ((p - g) ** 2).sum()
                    for p, g in zip(module.parameters(), global_params, strict=True)
                )
                loss = loss + mu / 2 * prox
            loss.backward()
            optim.step()
            steps += 1
            if steps >= n_steps:
                break
    content = RecordDict(
        {
            "arrays": ArrayRecord(module.state_dict()),
            "metrics": MetricRecord(
                {"num-examples": len(dataset), "train_loss": float(np.mean(losses))}
            ),
        }
    )
    return Message(content, reply_to=message)


def _run_context(context: Context, config: ConfigRecord) -> Context:
    """A Context holding only this run's client state, with the run's settings in node_config."""
    run = str(config[TAG])
    prefix = f"{run}:"
    for key in [k for k in context.state if not k.startswith(prefix)]:
        del context.state[key]  # an earlier run's state: never needed again
    state = RecordDict(
        {key[len(prefix) :]: rec for key, rec in context.state.items() if key.startswith(prefix)}
    )
    counter = state.get("bench.count")
    count = int(counter["n"]) if isinstance(counter, ConfigRecord) else 0  # type: ignore[arg-type]
    state["bench.count"] = ConfigRecord({"n": count + 1})
    node_config = {
        **context.node_config,
        **{k: v for k, v in config.items() if k.startswith("task.")},
        "bench.seed": config["bench.seed"],
        "bench.count": count,
    }
    return Context(context.run_id, context.node_id, node_config, state, context.run_config)  # type: ignore[arg-type]


def record_dict_bytes(records: RecordDict, skip: tuple[str, ...] = ()) -> int:
    """Payload bytes of a RecordDict (array data, bytes and strings; 8 per number)."""
    total = 0
    for key, record in records.items():
        if key in skip:
            continue
        if isinstance(record, ArrayRecord):
            total += sum(len(array.data) for array in record.values())
            continue
        for value in record.values():  # type: ignore[attr-defined]
            for item in value if isinstance(value, list) else [value]:
                total += len(item) if isinstance(item, bytes | str) else 8
    return total


def make_bench_client_app() -> ClientApp:
    """The ClientApp of every benchmark run: dispatch on the run's tag, namespace its state."""
    app = ClientApp()

    @app.query()
    def query(message: Message, context: Context) -> Message:
        record = ConfigRecord({"partition-id": _partition(context)})
        return Message(RecordDict({"node": record}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        config = message.content["config"]
        sub = _run_context(context, config)
        if bool(config["bench.flower"]):
            reply = _flower_train(message, sub)
        else:
            reply = _OURS(message, sub)
        prefix = f"{config[TAG]}:"
        for key, rec in sub.state.items():
            context.state[prefix + key] = rec
        if not reply.has_error():
            size = record_dict_bytes(sub.state, skip=("bench.count",))
            reply.content["metrics"][STATE_BYTES] = size  # type: ignore[index]
        return reply

    return app


# -- server side ---------------------------------------------------------------------------------


def fedadam_mapped_adam(eta: float, tau: float) -> Optimizer:
    """Server adam computing exactly what Flower's FedAdam does with beta_2 = 0 and tau.

    FedAdam: w += eta * sqrt(1 - b2^(t+1)) / (1 - b1^(t+1)) * m_t / (sqrt(v_t) + tau);
    ours: w -= lrate * (m_t / (1 - b1^k)) / (sqrt(v_t / (1 - b2^k)) + eps) on g = -delta.
    Equal with lrate = eta, same betas, k = t + 1 (steps start at 1) and
    eps * sqrt(1 - b2^k) = tau, i.e. eps = tau when beta_2 = 0.
    """
    optim = Optimizer(
        lrate=eta, modules=[("adam", {"beta_1": ADAM_BETAS[0], "beta_2": 0.0, "eps": tau})]
    )
    state = optim.get_state()
    state["modules"][0][1]["steps"] = 1
    optim.set_state(state)
    return optim


def _arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {key: array.numpy() for key, array in record.items()}


def float64_mean(replies: list[Message]) -> dict[str, np.ndarray]:
    """The weighted mean of the replies' arrays, summed in float64 (not rounded)."""
    counts = [float(msg.content["metrics"]["num-examples"]) for msg in replies]  # type: ignore[arg-type]
    total = sum(counts)
    out: dict[str, np.ndarray] = {}
    for msg, count in zip(replies, counts, strict=True):
        for key, value in _arrays(msg.content["arrays"]).items():
            term = value.astype(np.float64) * (count / total)
            out[key] = out[key] + term if key in out else term
    return out


class PermutedFedAvg(FedAvg):
    """Flower's FedAvg, fed the replies in a shuffled (seeded) order: only the float32
    summation order differs from FedAvg's."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = random.Random(seed)  # private: the node sampling draws from `random`

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._rng.shuffle(replies)
        return super().aggregate_train(server_round, replies)


class Float64FedAvg(FedAvg):
    """FedAvg with the weighted mean summed in float64 and rounded once to the weights' dtype."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = [msg for msg in replies if not msg.has_error()]
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        dtypes = {key: value.dtype for key, value in _arrays(arrays).items()}
        mean = float64_mean(replies)
        return ArrayRecord({k: Array(v.astype(dtypes[k])) for k, v in mean.items()}), metrics


def _max_abs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if set(a) != set(b):
        raise ValueError(f"weight names differ: {sorted(a)} vs {sorted(b)}")
    return max(float(np.max(np.abs(np.subtract(a[k], b[k], dtype=np.float64)))) for k in a)


def _share_rounded(values: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> float:
    """Share of the weights equal to the float64 `exact` rounded once to their dtype."""
    same = sum(int(np.sum(v == exact[k].astype(v.dtype))) for k, v in values.items())
    return same / sum(v.size for v in values.values())


def attach_twin_check(strategy: Strategy, twin: Strategy, result: RunResult) -> None:
    """Make `twin` (a Flower strategy) aggregate every round's replies next to `strategy`.

    At each round the twin starts from the global weights `strategy` was
    given (FedAvgM's and FedOpt's `current_arrays` are set to them; their
    momenta are their own, fed the same replies every round), so that the
    difference is one round's, without the drift of two trajectories.
    `result.checks[round]` gets the differences (NaN if a side aggregated
    nothing).
    """
    start: dict[str, ArrayRecord] = {}
    configure, aggregate = strategy.configure_train, strategy.aggregate_train

    def configure_train(
        server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        start["arrays"] = arrays
        return configure(server_round, arrays, config, grid)

    def aggregate_train(
        server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if isinstance(twin, FedAvgM):
            twin.current_arrays = start["arrays"]
        elif isinstance(twin, FedOpt):
            twin.current_arrays = _arrays(start["arrays"])
        theirs, _ = twin.aggregate_train(server_round, replies)
        ours, metrics = aggregate(server_round, replies)
        nan = float("nan")
        if ours is None or theirs is None:
            result.checks[server_round] = RoundCheck(nan, nan, nan, nan, nan)
            return ours, metrics
        mine, flower = _arrays(ours), _arrays(theirs)
        exact_ours = exact_flower = rounded_ours = rounded_flower = nan
        if type(twin) in (FedAvg, FedProx):  # a plain weighted mean
            exact = float64_mean([msg for msg in replies if not msg.has_error()])
            exact_ours, exact_flower = _max_abs(mine, exact), _max_abs(flower, exact)
            rounded_ours, rounded_flower = (
                _share_rounded(mine, exact),
                _share_rounded(flower, exact),
            )
        result.checks[server_round] = RoundCheck(
            _max_abs(mine, flower), exact_ours, exact_flower, rounded_ours, rounded_flower
        )
        return ours, metrics

    strategy.configure_train = configure_train  # type: ignore[method-assign]
    strategy.aggregate_train = aggregate_train  # type: ignore[method-assign]


def build_strategy(spec: RunSpec) -> Strategy:
    """The arm's server strategy, sampling `spec.fraction` of the nodes."""
    n_clients = spec.task.n_clients
    sampling = {
        "fraction_train": spec.fraction,
        "fraction_evaluate": 0.0,
        "min_train_nodes": 1,
        "min_available_nodes": n_clients,
    }
    p = spec.param
    b1, b2 = ADAM_BETAS
    if spec.arm == "flower-fedavg-permuted":
        return PermutedFedAvg(seed=spec.seed, **sampling)  # type: ignore[arg-type]
    if spec.arm == "fedavg-float64":
        return Float64FedAvg(**sampling)  # type: ignore[arg-type]
    if spec.arm in FLOWER_ARMS:
        if spec.arm == "flower-fedavg":
            return FedAvg(**sampling)  # type: ignore[arg-type]
        if spec.arm == "flower-fedprox":
            return FedProx(proximal_mu=p["mu"], **sampling)  # type: ignore[arg-type]
        if spec.arm == "flower-fedavgm":
            return FedAvgM(
                server_learning_rate=p["server_lr"],
                server_momentum=p["momentum"],
                **sampling,  # type: ignore[arg-type]
            )
        cls = {"flower-fedadam": FedAdam, "flower-fedyogi": FedYogi}[spec.arm]
        beta_2 = p.get("beta_2", b2)
        return cls(  # type: ignore[no-any-return]
            eta=p["eta"],
            eta_l=spec.client_lr,
            beta_1=b1,
            beta_2=beta_2,
            tau=p.get("tau", ADAM_TAU),
            **sampling,  # type: ignore[arg-type]
        )
    client: dict[str, Any] = {"lrate": spec.client_lr}
    server: Optimizer | dict[str, Any] | None = None
    adam = {"beta_1": b1, "beta_2": b2, "eps": ADAM_TAU}
    if spec.arm == "fedavg":
        pass
    elif spec.arm == "fedprox":
        client["regularizers"] = [["fedprox", {"alpha": p["mu"]}]]
    elif spec.arm in ("scaffold", "scaffold+adam"):
        client["modules"] = [["scaffold-client", {}]]
        if spec.arm == "scaffold":
            server = {"lrate": p.get("server_lr", 1.0), "modules": ["scaffold-server"]}
        else:
            server = {"lrate": p["eta"], "modules": ["scaffold-server", ["adam", adam]]}
    elif spec.arm in ("adam", "yogi"):
        server = {"lrate": p["eta"], "modules": [[spec.arm, adam]]}
    elif spec.arm == "momentum":
        server = {"lrate": p["server_lr"], "modules": [["momentum", {"beta": p["momentum"]}]]}
    elif spec.arm == "adam-as-fedadam":
        server = fedadam_mapped_adam(p["eta"], p.get("tau", ADAM_TAU))
    else:
        raise ValueError(f"Unknown arm {spec.arm!r}.")
    return DeclearnMessageStrategy(
        model=build_model(spec.task.kind, spec.task.seed),
        client_optimizer=client,
        server_optimizer=server,
        train_config={"batch_size": spec.batch_size, "n_steps": spec.local_steps},
        min_train_nodes=sampling["min_train_nodes"],  # type: ignore[arg-type]
        min_available_nodes=n_clients,
        fraction_train=spec.fraction,
        fraction_evaluate=0.0,
    )


def _evaluator(result: RunResult) -> Callable[[int, ArrayRecord], MetricRecord]:
    task = result.spec.task
    module = build_module(task.kind, task.seed)
    test = load_split(task).test

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        state = {key: arr.numpy() for key, arr in arrays.items()}
        if result.spec.keep_weights:
            result.weights[server_round] = {k: np.array(v) for k, v in state.items()}
        loss, accuracy = evaluate_state(module, state, test)
        result.loss[server_round] = loss
        result.accuracy[server_round] = accuracy
        return MetricRecord({"loss": loss, "accuracy": accuracy})

    return evaluate


class PartitionOrderedGrid(Grid):
    """The engine's Grid, listing node ids in partition order.

    Flower's simulation draws node ids at random at every start, and the
    strategies sample `random.sample(grid.get_node_ids(), k)`: listing the
    nodes by partition makes a seed sample the same partitions in every
    invocation, not only within one.
    """

    def __init__(self, inner: Grid, order: list[int]) -> None:
        self.inner = inner
        self.order = order

    @classmethod
    def discover(cls, grid: Grid) -> PartitionOrderedGrid:
        """Ask every node its partition id (one query message each)."""
        nodes = list(grid.get_node_ids())
        queries = [Message(RecordDict(), dst_node_id=node, message_type="query") for node in nodes]
        partition = {}
        for reply in grid.send_and_receive(queries, timeout=600.0):
            if reply.has_error():
                raise RuntimeError(f"node {reply.metadata.src_node_id}: {reply.error.reason}")
            record = reply.content["node"]
            partition[reply.metadata.src_node_id] = int(record["partition-id"])  # type: ignore[index,arg-type]
        if len(partition) != len(nodes):
            raise RuntimeError(f"{len(partition)} of {len(nodes)} nodes answered the query")
        return cls(grid, sorted(nodes, key=partition.__getitem__))

    def set_run(self, run: Any) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Any:
        return self.inner.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self.inner.create_message(*args, **kwargs)

    def get_node_ids(self) -> list[int]:
        return list(self.order)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], **kwargs: Any) -> Iterable[Message]:
        return self.inner.send_and_receive(messages, **kwargs)


def run_one(grid: Grid, spec: RunSpec) -> RunResult:
    """Run `spec` on `grid` with Python's `random` reseeded (same node samples in every arm)."""
    result = RunResult(spec)
    start = time.perf_counter()
    try:
        random.seed(spec.seed)
        strategy = build_strategy(spec)
        if spec.keep_weights and spec.arm in FLOWER_TWIN:
            twin = build_strategy(dataclasses.replace(spec, arm=FLOWER_TWIN[spec.arm]))
            attach_twin_check(strategy, twin, result)
        module = build_module(spec.task.kind, spec.task.seed)
        strategy.start(
            grid,
            ArrayRecord(module.state_dict()),
            num_rounds=spec.rounds,
            timeout=600.0,
            train_config=ConfigRecord(spec.client_config()),
            evaluate_fn=_evaluator(result),
        )
    except Exception:  # one failing arm (e.g. a divergent setting) must not end the others
        result.error = traceback.format_exc(limit=3)
    result.seconds = time.perf_counter() - start
    return result


def run_all(
    specs: Iterable[RunSpec],
    *,
    n_nodes: int,
    warmup: RunSpec | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    num_cpus: int = 2,
) -> list[RunResult]:
    """Run every spec, in order, in ONE Ray simulation of `n_nodes` SuperNodes.

    `specs` is consumed lazily, so a generator may choose its next runs from
    the results reported so far to `on_result`. `warmup` runs first and is
    not reported.
    """
    results: list[RunResult] = []
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        # Node registration may draw from `random`: let it finish before any run reseeds it.
        while len(list(grid.get_node_ids())) < n_nodes:
            time.sleep(0.1)
        grid = PartitionOrderedGrid.discover(grid)
        if warmup is not None:  # the first rounds on a fresh engine also draw from `random`
            run_one(grid, warmup)
        for spec in specs:
            result = run_one(grid, spec)
            results.append(result)
            if on_result is not None:
                on_result(result)

    for name in ("flwr", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    run_simulation(
        server_app=server_app,
        client_app=make_bench_client_app(),
        num_supernodes=n_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": num_cpus,
                "logging_level": "ERROR",
                "log_to_driver": False,
            },
        },
        verbose_logging=False,
    )
    return results
