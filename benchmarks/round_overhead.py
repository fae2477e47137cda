"""Round overhead of flwr_declearn against plain Flower, and bytes on the wire.

Arm "flower": Flower's `FedAvg` with a plain `NumPyClient` running
`torch.optim.SGD`. Arm "declearn": `DeclearnStrategy` (default server
Optimizer: FedAvg) with `DeclearnClient` and the same SGD config. Both arms
do the same local work (N clients x S steps of the same MLP on the same
batches) and go through the same in-process transport, built from Flower's
own pieces exactly as a deployment does:

    strategy.configure_fit -> FitIns -> RecordDict (Flower's compat layer)
    -> Message -> deflated objects (the bytes the SuperLink stores and a
    SuperNode pulls) -> inflated Message -> ClientApp (Flower's legacy
    message handler, NumPyClient conversion) -> reply Message -> objects
    -> FitRes -> strategy.aggregate_fit

The two arms run in lockstep, interleaved step by step (configure_fit,
each client's delivery, aggregate_fit; ABBA order), so that load changes
hit both alike; a round's time is the sum of its steps. The first rounds
are warm-up, and the median round times are compared: goal <= 1.05x.

Bytes, measured in separate short runs (2 rounds, 1 local step: the bytes
do not depend on the local work) at the default model size and at a larger
one (--large-hidden): the deflated objects of one client's round-2 train
message (down) and reply (up), averaged over the clients, against the raw
float32 bytes of the model's weights. Goals: bytes per round (a client's
train message and reply) <= 1.01x the raw weights sent both ways for
FedAvg, and <= 2.02x upward for SCAFFOLD (weights plus a control-variate
delta of the same size). Each direction is printed too: on the small default
model, Flower's own fixed framing (~3-3.5 KB per message) alone puts its
FedAvg reply above 1.01x on the legacy path. Next to the legacy path
above, the Message API path is measured too: Flower's
`flwr.serverapp.strategy.FedAvg` with a plain torch ClientApp against
`DeclearnMessageStrategy` with `make_client_app`, over an in-process Grid
doing the same deflate/inflate. The tables split Flower's own framing
of a message by object type, and show what flwr_declearn adds over Flower.

Usage: python benchmarks/round_overhead.py [--clients 10] [--steps 50] [--rounds 20] [--hidden 256]
       [--large-hidden 1024]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.client import Client, ClientApp, NumPyClient
from flwr.common import MessageType, Scalar, ndarrays_to_parameters
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.compat.common.recorddict_compat import fitins_to_recorddict, recorddict_to_fitres
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg, Strategy
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as MessageFedAvg
from flwr.serverapp.strategy import Strategy as MessageStrategy
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from flwr_declearn.data import InMemoryDataset, partition_indices
from flwr_declearn.flower import (
    DeclearnClient,
    DeclearnMessageStrategy,
    DeclearnStrategy,
    make_client_app,
)
from flwr_declearn.model.torch import TorchModel
from flwr_declearn.optimizer import Optimizer

N_FEATURES, N_CLASSES, N_SAMPLES = 64, 10, 5000
BATCH_SIZE, LRATE, SEED = 32, 0.05, 0


# -- task -----------------------------------------------------------------------------------------


def build_module(hidden: int) -> torch.nn.Module:
    """The MLP both arms train, with seeded initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, N_CLASSES),
        )


def make_shards(n_clients: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Synthetic 10-class data (a random linear teacher), split non-IID over the clients."""
    rng = np.random.default_rng(SEED)
    inputs = rng.normal(size=(N_SAMPLES, N_FEATURES)).astype(np.float32)
    labels = np.argmax(inputs @ rng.normal(size=(N_FEATURES, N_CLASSES)), axis=1)
    parts = partition_indices(labels, n_clients, "dirichlet", alpha=1.0, min_size=64, seed=SEED)
    return [(inputs[idx], labels[idx].astype(np.int64)) for idx in parts]


class TorchSGDClient(NumPyClient):
    """Plain Flower client: `torch.optim.SGD` for a fixed number of steps."""

    def __init__(self, hidden: int, shard: tuple[np.ndarray, np.ndarray], steps: int) -> None:
        self.module = build_module(hidden)
        self.dataset = InMemoryDataset(*shard, seed=SEED)
        self.steps = steps

    def get_parameters(self, config: dict[str, Scalar]) -> list[np.ndarray]:
        return [v.detach().numpy().copy() for v in self.module.state_dict().values()]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Scalar]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        with torch.no_grad():
            for tensor, value in zip(self.module.state_dict().values(), parameters, strict=True):
                tensor.copy_(torch.from_numpy(value))
        optim = torch.optim.SGD(self.module.parameters(), lr=LRATE)
        loss_fn = torch.nn.CrossEntropyLoss()
        losses, done = [], 0
        while done < self.steps:
            for inputs, target, _ in self.dataset.generate_batches(
                BATCH_SIZE, shuffle=True, drop_remainder=False
            ):
                optim.zero_grad()
                loss = loss_fn(self.module(torch.from_numpy(inputs)), torch.from_numpy(target))
                loss.backward()
                optim.step()
                losses.append(loss.detach())
                done += 1
                if done >= self.steps:
                    break
        train_loss = float(torch.stack(losses).mean())
        return self.get_parameters({}), len(self.dataset), {"train_loss": train_loss}


# -- transport ------------------------------------------------------------------------------------


class _Proxy(ClientProxy):
    """Identifies a node for the strategies' client sampling; `Arm` delivers the messages."""

    def _unused(self) -> Any:
        raise NotImplementedError("the benchmark delivers messages itself")

    def get_properties(self, ins: Any, timeout: float | None, group_id: int | None) -> Any:
        return self._unused()

    def get_parameters(self, ins: Any, timeout: float | None, group_id: int | None) -> Any:
        return self._unused()

    def fit(self, ins: Any, timeout: float | None, group_id: int | None) -> Any:
        return self._unused()

    def evaluate(self, ins: Any, timeout: float | None, group_id: int | None) -> Any:
        return self._unused()

    def reconnect(self, ins: Any, timeout: float | None, group_id: int | None) -> Any:
        return self._unused()


def transfer(message: Message) -> tuple[Message, Counter[str]]:
    """Deflate a Message into its objects (the wire payload), inflate it back.

    Returns the received Message and the deflated bytes by object type
    ("Message", "RecordDict", "ArrayRecord", "Array", "ArrayChunk"...).
    """
    message.metadata.__dict__["_message_id"] = message.object_id
    objects = get_all_nested_objects(message)
    contents = {oid: obj.deflate() for oid, obj in objects.items()}
    nbytes: Counter[str] = Counter()
    for oid, content in contents.items():
        nbytes[type(objects[oid]).__name__] += len(content)
    received = inflate_object_from_contents(message.object_id, contents)
    assert isinstance(received, Message)
    received.metadata.__dict__["_message_id"] = message.metadata.message_id
    return received, nbytes


def node_contexts(n_clients: int) -> dict[int, Context]:
    """One Context per node (ids 1..N), as a SuperNode keeps it."""
    return {
        node: Context(
            run_id=1,
            node_id=node,
            node_config={"partition-id": node - 1, "num-partitions": n_clients},
            state=RecordDict(),
            run_config={},
        )
        for node in range(1, n_clients + 1)
    }


class Arm:
    """A legacy strategy and a ClientApp over N nodes, each node keeping its Context."""

    def __init__(self, name: str, strategy: Strategy, client_fn: Callable[[Context], Client]):
        self.name = name
        self.strategy = strategy
        self.client_app = ClientApp(client_fn=client_fn)
        self.manager = SimpleClientManager()
        self.contexts: dict[str, Context] = {}
        self.times: list[float] = []
        self.aggregate_times: list[float] = []
        self.bytes_down: list[Counter[str]] = []
        self.bytes_up: list[Counter[str]] = []
        self.parameters: Any = None
        self.round = 0

    def register(self, n_clients: int) -> None:
        for node, context in node_contexts(n_clients).items():
            self.manager.register(_Proxy(str(node)))
            self.contexts[str(node)] = context
        self.parameters = self.strategy.initialize_parameters(self.manager)

    def rounds(self) -> Iterator[None]:
        """Run rounds forever, pausing after each timed step (the caller interleaves arms).

        A round's steps are configure_fit, one delivery per client, then
        aggregate_fit; their times add up to the round time.
        """
        while True:
            self.round += 1
            elapsed = 0.0
            down: Counter[str] = Counter()
            up: Counter[str] = Counter()
            start = time.perf_counter()
            instructions = self.strategy.configure_fit(self.round, self.parameters, self.manager)
            elapsed += time.perf_counter() - start
            yield
            results = []
            for proxy, ins in instructions:
                start = time.perf_counter()
                message = Message(
                    fitins_to_recorddict(ins, keep_input=True),
                    dst_node_id=int(proxy.cid),
                    message_type=MessageType.TRAIN,
                    group_id=str(self.round),
                )
                received, n_down = transfer(message)
                reply, n_up = transfer(self.client_app(received, self.contexts[proxy.cid]))
                results.append((proxy, recorddict_to_fitres(reply.content, keep_input=False)))
                elapsed += time.perf_counter() - start
                down.update(n_down)
                up.update(n_up)
                yield
            start = time.perf_counter()
            parameters, _ = self.strategy.aggregate_fit(self.round, results, [])
            self.aggregate_times.append(time.perf_counter() - start)
            elapsed += self.aggregate_times[-1]
            assert parameters is not None, f"{self.name}: round {self.round} was not aggregated"
            self.parameters = parameters
            self.times.append(elapsed)
            self.bytes_down.append(down)
            self.bytes_up.append(up)
            yield

    def run_round(self) -> None:
        """Run one whole round (no interleaving)."""
        steps = self.rounds()
        target = self.round + 1
        while len(self.times) < target:
            next(steps)


class BytesGrid(Grid):
    """In-process Grid for a Message API strategy: delivers every Message to a ClientApp
    through `transfer`, keeping each node's Context, and counts the train rounds' bytes."""

    def __init__(self, client_app: ClientApp, n_clients: int) -> None:
        self.client_app = client_app
        self.contexts = node_contexts(n_clients)
        self._run = Run.create_empty(run_id=1)
        self._replies: dict[str, Message] = {}
        self.bytes_down: list[Counter[str]] = []
        self.bytes_up: list[Counter[str]] = []

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
        down: Counter[str] = Counter()
        up: Counter[str] = Counter()
        for message in messages:
            received, n_down = transfer(message)
            reply = self.client_app(received, self.contexts[received.metadata.dst_node_id])
            reply, n_up = transfer(reply)
            self._replies[received.metadata.message_id] = reply
            ids.append(received.metadata.message_id)
            if received.metadata.message_type == MessageType.TRAIN:
                down.update(n_down)
                up.update(n_up)
        if down:
            self.bytes_down.append(down)
            self.bytes_up.append(up)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(mid) for mid in message_ids]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


# -- arms -----------------------------------------------------------------------------------------


def torch_sgd_client_app(
    hidden: int, shards: list[tuple[np.ndarray, np.ndarray]], steps: int
) -> ClientApp:
    """A plain Message API ClientApp: the `TorchSGDClient` work, weights as a torch state_dict."""
    app = ClientApp()

    @app.train()
    def train(message: Message, context: Context) -> Message:
        client = TorchSGDClient(hidden, shards[int(context.node_config["partition-id"])], steps)
        arrays = message.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        _, count, metrics = client.fit(arrays.to_numpy_ndarrays(), {})
        content = RecordDict(
            {
                "arrays": ArrayRecord(client.module.state_dict()),
                "metrics": MetricRecord({**metrics, "num-examples": count}),  # type: ignore[dict-item]
            }
        )
        return Message(content, reply_to=message)

    return app


def make_arms(args: argparse.Namespace) -> tuple[Arm, Arm, Arm]:
    """The legacy-API arms: Flower FedAvg, flwr_declearn FedAvg, flwr_declearn SCAFFOLD."""
    shards = make_shards(args.clients)

    def shard_of(context: Context) -> tuple[np.ndarray, np.ndarray]:
        return shards[int(context.node_config["partition-id"])]

    def torch_client(context: Context) -> Client:
        return TorchSGDClient(args.hidden, shard_of(context), args.steps).to_client()

    def declearn_client(context: Context) -> Client:
        model = TorchModel(build_module(args.hidden), torch.nn.CrossEntropyLoss())
        dataset = InMemoryDataset(*shard_of(context), seed=SEED)
        return DeclearnClient(model, dataset, context).to_client()

    initial = [v.detach().numpy() for v in build_module(args.hidden).state_dict().values()]
    common = {"min_fit_clients": args.clients, "min_available_clients": args.clients}
    flower = Arm(
        "flower FedAvg + torch.optim",
        FedAvg(fraction_evaluate=0.0, initial_parameters=ndarrays_to_parameters(initial), **common),
        torch_client,
    )

    def declearn_strategy(client_optim: dict[str, Any], server: Optimizer | None) -> Strategy:
        return DeclearnStrategy(
            model=TorchModel(build_module(args.hidden), torch.nn.CrossEntropyLoss()),
            client_optimizer=client_optim,
            server_optimizer=server,
            train_config={"batch_size": BATCH_SIZE, "n_steps": args.steps},
            fraction_evaluate=0.0,
            **common,
        )

    declearn = Arm(
        "flwr_declearn FedAvg", declearn_strategy({"lrate": LRATE}, None), declearn_client
    )
    scaffold = Arm(
        "flwr_declearn SCAFFOLD",
        declearn_strategy(
            {"lrate": LRATE, "modules": [["scaffold-client", {}]]},
            Optimizer(lrate=1.0, modules=["scaffold-server"]),
        ),
        declearn_client,
    )
    for arm in (flower, declearn, scaffold):
        arm.register(args.clients)
    return flower, declearn, scaffold


# -- bytes ----------------------------------------------------------------------------------------

ARM_NAMES = ("flower FedAvg", "flwr_declearn FedAvg", "flwr_declearn SCAFFOLD")
BYTES_ROUNDS = 2  # round 1 carries the client configs and no server aux-vars; round 2 is steady


def measure_bytes(clients: int, hidden: int) -> dict[tuple[str, str], tuple[Counter, Counter]]:
    """Bytes by object type of one round-2 train message down and up, mean over the clients.

    Returns `{(path, arm name): (down, up)}` for the legacy and Message API paths.
    """
    args = argparse.Namespace(clients=clients, steps=1, hidden=hidden)
    out: dict[tuple[str, str], tuple[Counter, Counter]] = {}

    def per_message(counts: Counter[str]) -> Counter:
        return Counter({key: val / clients for key, val in counts.items()})

    for name, arm in zip(ARM_NAMES, make_arms(args), strict=True):
        for _ in range(BYTES_ROUNDS):
            arm.run_round()
        out["legacy", name] = (per_message(arm.bytes_down[-1]), per_message(arm.bytes_up[-1]))

    shards = make_shards(clients)

    def declearn_client(context: Context) -> DeclearnClient:
        model = TorchModel(build_module(hidden), torch.nn.CrossEntropyLoss())
        dataset = InMemoryDataset(*shards[int(context.node_config["partition-id"])], seed=SEED)
        return DeclearnClient(model, dataset, context)

    def declearn_strategy(
        client_optim: dict[str, Any], server: Optimizer | None
    ) -> DeclearnMessageStrategy:
        return DeclearnMessageStrategy(
            model=TorchModel(build_module(hidden), torch.nn.CrossEntropyLoss()),
            client_optimizer=client_optim,
            server_optimizer=server,
            train_config={"batch_size": BATCH_SIZE, "n_steps": 1},
            fraction_evaluate=0.0,
            min_train_nodes=clients,
            min_available_nodes=clients,
        )

    fedavg = declearn_strategy({"lrate": LRATE}, None)
    scaffold = declearn_strategy(
        {"lrate": LRATE, "modules": [["scaffold-client", {}]]},
        Optimizer(lrate=1.0, modules=["scaffold-server"]),
    )
    runs: list[tuple[MessageStrategy, ClientApp, ArrayRecord]] = [
        (
            MessageFedAvg(
                fraction_evaluate=0.0, min_train_nodes=clients, min_available_nodes=clients
            ),
            torch_sgd_client_app(hidden, shards, 1),
            ArrayRecord(build_module(hidden).state_dict()),
        ),
        (fedavg, make_client_app(declearn_client), fedavg.global_arrays()),
        (scaffold, make_client_app(declearn_client), scaffold.global_arrays()),
    ]
    for name, (strategy, app, arrays) in zip(ARM_NAMES, runs, strict=True):
        grid = BytesGrid(app, clients)
        strategy.start(grid, arrays, num_rounds=BYTES_ROUNDS)
        assert len(grid.bytes_up) == BYTES_ROUNDS, f"{name}: a train round failed"
        out["message", name] = (per_message(grid.bytes_down[-1]), per_message(grid.bytes_up[-1]))
    return out


GOALS = {
    ("flwr_declearn FedAvg", "round"): 1.01,  # bytes per round: down + up vs 2 x raw
    ("flwr_declearn SCAFFOLD", "up"): 2.02,
}
VECTORS = {"flwr_declearn SCAFFOLD": 2}  # weight-sized payloads per message (default 1)


def print_bytes_table(
    title: str, raw: int, measured: dict[tuple[str, str], tuple[Counter, Counter]]
) -> None:
    """Per-message bytes of every arm against raw weights and against Flower's FedAvg.

    Columns: total bytes; ratio to the raw float32 weights; framing (bytes
    beyond the weight-sized payloads: one, or two for SCAFFOLD's weights and
    control variate); difference with Flower's FedAvg message on the same path,
    in bytes, in % and by object type; the goal check.
    """
    print(f"\n{title}: raw float32 weights {raw} B per message")
    print(
        f"  {'path':<8s}{'arm':<24s}{'way':<5s}{'bytes':>9s}{'x raw':>8s}{'framing':>9s}"
        f"{'vs flower':>10s}{'%':>9s}  {'goal':<17s}where (object type: B)"
    )
    for (path, name), pair in measured.items():
        base_pair = measured[path, ARM_NAMES[0]]
        for idx, way in enumerate(("down", "up", "round")):
            if way == "round":  # both messages of a client's round, vs the weights sent both ways
                counts, flower, size = pair[0] + pair[1], base_pair[0] + base_pair[1], 2 * raw
            else:
                counts, flower, size = pair[idx], base_pair[idx], raw
            nbytes, base = sum(counts.values()), sum(flower.values())
            framing = nbytes - VECTORS.get(name, 1) * size
            goal = GOALS.get((name, way))
            note = f"<= {goal}x: {_ok(nbytes / size <= goal)}" if goal else ""
            if name == ARM_NAMES[0]:
                diff, pct, where = "-", "-", ""
            else:
                delta = {k: counts[k] - flower[k] for k in sorted(set(counts) | set(flower))}
                diff, pct = f"{nbytes - base:+.0f}", f"{(nbytes - base) / base:+.3%}"
                where = ", ".join(f"{k} {v:+.0f}" for k, v in delta.items() if abs(v) >= 0.5)
            print(
                f"  {path:<8s}{name:<24s}{way:<5s}{nbytes:9.0f}{nbytes / size:8.4f}{framing:9.0f}"
                f"{diff:>10s}{pct:>9s}  {note:<17s}{where}"
            )


def print_framing(raw: int, measured: dict[tuple[str, str], tuple[Counter, Counter]]) -> None:
    """Flower's own bytes around the raw weights in a FedAvg message, by object type."""
    columns = [
        (f"{path} {way}", pair[idx])
        for path in ("legacy", "message")
        for idx, way in enumerate(("down", "up"))
        for pair in [measured[path, ARM_NAMES[0]]]
    ]
    kinds = sorted({kind for _, counts in columns for kind in counts}, key=_kind_order)
    print(
        "\nFlower's own framing of one FedAvg message (bytes beyond the raw weights), "
        "by deflated object type (B)"
    )
    print(f"  {'object':<40s}" + "".join(f"{name:>14s}" for name, _ in columns))
    for kind in kinds:
        label = kind if kind != "ArrayChunk" else "ArrayChunk minus raw (npy + chunk heads)"
        own = raw if kind == "ArrayChunk" else 0
        cells = [counts.get(kind, 0) - own for _, counts in columns]
        print(f"  {label:<40s}" + "".join(f"{cell:14.0f}" for cell in cells))
    totals = [sum(counts.values()) - raw for _, counts in columns]
    print(f"  {'total':<40s}" + "".join(f"{cell:14.0f}" for cell in totals))


def _kind_order(kind: str) -> tuple[int, str]:
    order = ["Message", "RecordDict", "ConfigRecord", "MetricRecord", "ArrayRecord", "Array"]
    return (order.index(kind) if kind in order else len(order), kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50, help="local steps per client and round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per arm, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width")
    parser.add_argument(
        "--large-hidden",
        type=int,
        default=1024,
        help="hidden width of the bytes-only model (0: skip)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The identity a ServerApp's messages are stamped with (as `start_grid` sets it).
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID

    flower, declearn, _ = make_arms(args)
    print(
        f"{args.clients} clients x {args.steps} steps of batch {BATCH_SIZE}, MLP "
        f"{N_FEATURES}-{args.hidden}-{args.hidden}-{N_CLASSES} "
        f"({n_weights(args.hidden)} float32 weights), {args.rounds} rounds per arm "
        f"({args.warmup} warm-up), torch threads 1"
    )
    # Interleave the arms step by step (ABBA order), so that load changes hit both alike.
    steps = {arm.name: arm.rounds() for arm in (flower, declearn)}
    n_steps = args.rounds * (args.clients + 2)
    for step in range(n_steps):
        order = (flower, declearn) if step % 2 == 0 else (declearn, flower)
        for arm in order:
            next(steps[arm.name])

    def median_time(arm: Arm) -> float:
        return statistics.median(arm.times[args.warmup :])

    t_flower, t_declearn = median_time(flower), median_time(declearn)
    print("\nround time (median)")
    print(f"  {flower.name:<28s} {t_flower * 1e3:9.1f} ms")
    print(f"  {declearn.name:<28s} {t_declearn * 1e3:9.1f} ms")
    ratio = t_declearn / t_flower
    print(f"  ratio declearn / flower      {ratio:9.3f}x   (goal <= 1.05x: {_ok(ratio <= 1.05)})")
    agg_flower, agg_declearn = (
        statistics.median(arm.aggregate_times[args.warmup :]) for arm in (flower, declearn)
    )
    print(
        f"  of which aggregate_fit: flower {agg_flower * 1e3:.1f} ms, flwr_declearn "
        f"{agg_declearn * 1e3:.1f} ms (boundary checks, float64 running sum, transaction)"
    )

    logging.getLogger("flwr").setLevel(logging.WARNING)  # Strategy.start logs every round
    print(
        f"\nbytes per train message, one client's round {BYTES_ROUNDS} down / reply up "
        f"(mean over {args.clients} clients; a round moves {args.clients}x this); "
        "'over flower': what flwr_declearn adds to Flower's FedAvg message on the same path"
    )
    sizes = [args.hidden] + ([args.large_hidden] if args.large_hidden else [])
    first = None
    for hidden in sizes:
        measured = measure_bytes(args.clients, hidden)
        first = first or (n_weights(hidden) * 4, measured)
        print_bytes_table(
            f"MLP {N_FEATURES}-{hidden}-{hidden}-{N_CLASSES} ({n_weights(hidden)} weights)",
            n_weights(hidden) * 4,
            measured,
        )
    assert first is not None
    print_framing(*first)


def n_weights(hidden: int) -> int:
    """Number of weights of the MLP with this hidden width."""
    return sum(v.numel() for v in build_module(hidden).state_dict().values())


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    main()
