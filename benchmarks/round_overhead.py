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

Bytes: the deflated objects of each FitIns (down) and FitRes (up) message,
summed over clients, against the raw float32 bytes of the model's weights
times the number of clients: goal <= 1.01x for FedAvg, and <= 2.02x upward
for SCAFFOLD (weights plus a control-variate delta of the same size).

Usage: python benchmarks/round_overhead.py [--clients 10] [--steps 50] [--rounds 20] [--hidden 256]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from flwr.app import Context, Message, RecordDict
from flwr.client import Client, ClientApp, NumPyClient
from flwr.common import MessageType, Scalar, ndarrays_to_parameters
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.compat.common.recorddict_compat import fitins_to_recorddict, recorddict_to_fitres
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg, Strategy
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents
from flwr.supercore.task_identity import TaskIdentity

from flwr_declearn.data import InMemoryDataset, partition_indices
from flwr_declearn.flower import DeclearnClient, DeclearnStrategy
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


def transfer(message: Message) -> tuple[Message, int]:
    """Deflate a Message into its objects (the wire payload), inflate it back; return bytes."""
    message.metadata.__dict__["_message_id"] = message.object_id
    contents = {oid: obj.deflate() for oid, obj in get_all_nested_objects(message).items()}
    nbytes = sum(len(content) for content in contents.values())
    received = inflate_object_from_contents(message.object_id, contents)
    assert isinstance(received, Message)
    return received, nbytes


class Arm:
    """A strategy and a ClientApp over N nodes, each node keeping its Context."""

    def __init__(self, name: str, strategy: Strategy, client_fn: Callable[[Context], Client]):
        self.name = name
        self.strategy = strategy
        self.client_app = ClientApp(client_fn=client_fn)
        self.manager = SimpleClientManager()
        self.contexts: dict[str, Context] = {}
        self.times: list[float] = []
        self.bytes_down: list[int] = []
        self.bytes_up: list[int] = []
        self.parameters: Any = None
        self.round = 0

    def register(self, n_clients: int) -> None:
        for node in range(1, n_clients + 1):
            self.manager.register(_Proxy(str(node)))
            self.contexts[str(node)] = Context(
                run_id=1,
                node_id=node,
                node_config={"partition-id": node - 1, "num-partitions": n_clients},
                state=RecordDict(),
                run_config={},
            )
        self.parameters = self.strategy.initialize_parameters(self.manager)

    def rounds(self) -> Iterator[None]:
        """Run rounds forever, pausing after each timed step (the caller interleaves arms).

        A round's steps are configure_fit, one delivery per client, then
        aggregate_fit; their times add up to the round time.
        """
        while True:
            self.round += 1
            elapsed, down, up = 0.0, 0, 0
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
                down, up = down + n_down, up + n_up
                yield
            start = time.perf_counter()
            parameters, _ = self.strategy.aggregate_fit(self.round, results, [])
            elapsed += time.perf_counter() - start
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


# -- arms -----------------------------------------------------------------------------------------


def make_arms(args: argparse.Namespace) -> tuple[Arm, Arm, Arm]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50, help="local steps per client and round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per arm, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden width")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The identity a ServerApp's messages are stamped with (as `start_grid` sets it).
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID

    flower, declearn, scaffold = make_arms(args)
    raw = sum(v.numel() for v in build_module(args.hidden).state_dict().values()) * 4
    print(
        f"{args.clients} clients x {args.steps} steps of batch {BATCH_SIZE}, MLP "
        f"{N_FEATURES}-{args.hidden}-{args.hidden}-{N_CLASSES} ({raw // 4} float32 weights, "
        f"{raw} bytes), {args.rounds} rounds per arm ({args.warmup} warm-up), torch threads 1"
    )
    # Interleave the arms step by step (ABBA order), so that load changes hit both alike.
    steps = {arm.name: arm.rounds() for arm in (flower, declearn)}
    n_steps = args.rounds * (args.clients + 2)
    for step in range(n_steps):
        order = (flower, declearn) if step % 2 == 0 else (declearn, flower)
        for arm in order:
            next(steps[arm.name])
    for _ in range(args.warmup + 2):  # SCAFFOLD: bytes only (its round 1 has no aux-vars yet)
        scaffold.run_round()

    def median_time(arm: Arm) -> float:
        return statistics.median(arm.times[args.warmup :])

    t_flower, t_declearn = median_time(flower), median_time(declearn)
    print("\nround time (median)")
    print(f"  {flower.name:<28s} {t_flower * 1e3:9.1f} ms")
    print(f"  {declearn.name:<28s} {t_declearn * 1e3:9.1f} ms")
    ratio = t_declearn / t_flower
    print(f"  ratio declearn / flower      {ratio:9.3f}x   (goal <= 1.05x: {_ok(ratio <= 1.05)})")

    expected = raw * args.clients
    print(f"\nbytes per round, {args.clients} clients, vs raw float32 weights ({expected} B)")
    print(f"  {'arm':<28s} {'way':<5s} {'bytes':>10s}  {'x raw':>7s}  {'x flower':>8s}")
    goals = {(declearn, "down"): 1.01, (declearn, "up"): 1.01, (scaffold, "up"): 2.02}
    for arm in (flower, declearn, scaffold):
        for way, values, base in (
            ("down", arm.bytes_down, flower.bytes_down[-1]),
            ("up", arm.bytes_up, flower.bytes_up[-1]),
        ):
            nbytes = values[-1]
            ratio = nbytes / expected
            goal = goals.get((arm, way))
            note = f"  (goal <= {goal}x raw: {_ok(ratio <= goal)})" if goal else ""
            print(
                f"  {arm.name:<28s} {way:<5s} {nbytes:10d}  {ratio:7.4f}  "
                f"{nbytes / base:8.5f}{note}"
            )
    framing = (flower.bytes_down[-1] - expected) / args.clients
    print(f"  Flower's own framing of a FedAvg FitIns: {framing:.0f} B per message")


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    main()
