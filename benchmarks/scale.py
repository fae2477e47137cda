"""Scale: 1000 simulated clients on Flower's Ray engine, and aggregating a 10M-parameter model.

Part "sim" (one `run_simulation` of 1000 SuperNodes on 2 CPUs, `_arms.py`'s
ClientApp): a logistic regression (610 weights) on the "blobs" task (50
samples per client), with 10, 100 and 1000 clients sampled per round, for
three server configurations: Flower's FedAvg (plain torch client), ours
with the FedAvg config, ours with SCAFFOLD. Per configuration and sample
size: server time per round (the strategy's `configure_train` plus
`aggregate_train`, over the timed rounds, i.e. all but the first (warm-up)
and the last (traced): median and range), the round's
wall time (clients included), the memory the server's Python heap holds
during a round (tracemalloc, in a last, untimed round: the replies Flower
hands over at once, and the extra peak inside `aggregate_train`), the
per-client `context.state` size (measured by the ClientApp after training),
and the peak resident memory of the driver and of its process tree (Ray
workers included).

Part "agg" (in-process, no clients): `aggregate_train` of 100 replies of a
10M-parameter float32 model (four arrays, 40 MB), ours (FedAvg config)
against Flower's Message API FedAvg, interleaved over `--repeats` rounds:
median time, range and ratio (goal <= 1.1); then, with tracemalloc, the
extra peak memory each aggregation allocates, in model sizes (a running
sum needs about 1-2; one copy per client would need about 100).

Part "server" (in-process, no clients): the server steps of a round
(`configure_train` + `aggregate_train`) of the small model for 10, 100 and
1000 fabricated replies, ours (FedAvg config) vs Flower's FedAvg, without
the simulation's noise, and the extra peak memory of `aggregate_train`
(tracemalloc, one more round).

Part "memory" (in-process): the extra peak memory of `aggregate_train` for
10, 100 and 1000 replies of a 100K-parameter model, ours vs Flower's FedAvg,
to tell what grows with the model from what grows with the replies.

Usage: python benchmarks/scale.py [--part sim|agg|server|memory|all] [--rounds 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # Ray workers inherit it

from _arms import STATE_BYTES, RunSpec, build_strategy, make_bench_client_app
from _fedtasks import TaskSpec, build_module
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg, Strategy
from flwr.simulation import run_simulation
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from flwr_declearn.flower import DeclearnMessageStrategy

N_NODES = 1000
SAMPLED = (10, 100, 1000)
ARMS = (("flower-fedavg", {}), ("fedavg", {}), ("scaffold", {"server_lr": 1.0}))
MB = 2**20


# -- memory of this process tree -----------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.extend(children.get(pid, []))
        todo.extend(children.get(pid, []))
    return out


def tree_memory_mb() -> tuple[float, float]:
    """(peak RSS of this process, sum of the peak RSS of its descendants), in MB."""
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    others = sum(_status_kb(pid, "VmHWM") for pid in _descendants(os.getpid())) / 1024
    return driver, others


# -- part "sim" ----------------------------------------------------------------------------------


@dataclasses.dataclass
class RoundStats:
    server_s: list[float] = dataclasses.field(default_factory=list)
    wall_s: list[float] = dataclasses.field(default_factory=list)
    replies_mb: float = 0.0
    aggregate_extra_mb: float = 0.0
    state_bytes: float = 0.0
    driver_peak_mb: float = 0.0
    tree_peak_mb: float = 0.0


def instrument(strategy: Strategy, stats: RoundStats, traced_round: int) -> None:
    """Time `configure_train` + `aggregate_train` per round; trace memory in `traced_round`."""
    base = type(strategy)
    marks: dict[str, float] = {}

    class Timed(base):  # type: ignore[valid-type,misc]
        def configure_train(self, server_round: int, *args: Any, **kwargs: Any) -> Any:
            if server_round == traced_round:
                tracemalloc.start()
            marks["round_start"] = time.perf_counter()
            out = list(super().configure_train(server_round, *args, **kwargs))
            marks["configure"] = time.perf_counter() - marks["round_start"]
            return out

        def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> Any:
            replies = list(replies)
            traced = server_round == traced_round
            if traced:
                held, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
            start = time.perf_counter()
            arrays, metrics = super().aggregate_train(server_round, replies)
            end = time.perf_counter()
            if traced:
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                stats.replies_mb = held / MB
                stats.aggregate_extra_mb = (peak - held) / MB
            elif server_round > 1:  # round 1 warms up (Ray workers, imports, caches)
                stats.server_s.append(marks["configure"] + end - start)
                stats.wall_s.append(end - marks["round_start"])
            if metrics is not None and STATE_BYTES in metrics:
                stats.state_bytes = float(metrics[STATE_BYTES])  # type: ignore[arg-type]
            return arrays, metrics

    strategy.__class__ = Timed


def run_sim(
    rounds: int, n_nodes: int = N_NODES, sampled: tuple[int, ...] = SAMPLED
) -> dict[tuple[str, int], RoundStats]:
    task = TaskSpec("blobs", n_nodes, seed=0)
    results: dict[tuple[str, int], RoundStats] = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        while len(list(grid.get_node_ids())) < n_nodes:
            time.sleep(0.5)
        for n_sampled in sampled:
            for arm, params in ARMS:
                spec = RunSpec(
                    arm, tuple(params.items()), task, n_sampled / n_nodes, rounds, 0.05, 32, 5
                )
                stats = results[(arm, n_sampled)] = RoundStats()
                strategy = build_strategy(spec)
                instrument(strategy, stats, traced_round=rounds)
                strategy.start(
                    grid,
                    ArrayRecord(build_module("blobs").state_dict()),
                    num_rounds=rounds,
                    timeout=3600.0,
                    train_config=ConfigRecord(spec.client_config()),
                )
                stats.driver_peak_mb, stats.tree_peak_mb = tree_memory_mb()
                print(f"  {arm} x {n_sampled}: {_row(stats)}", flush=True)

    run_simulation(
        server_app=server_app,
        client_app=make_bench_client_app(),
        num_supernodes=n_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
        },
        verbose_logging=False,
    )
    return results


def _span(values: list[float], scale: float = 1e3) -> str:
    if not values:
        return "-"
    med = statistics.median(values) * scale
    return f"{med:.1f} ({min(values) * scale:.1f}-{max(values) * scale:.1f})"


def _row(s: RoundStats) -> str:
    return (
        f"server {_span(s.server_s)} ms/round, wall {_span(s.wall_s, 1.0)} s/round, "
        f"replies {s.replies_mb:.2f} MB, aggregate +{s.aggregate_extra_mb:.2f} MB, "
        f"state {s.state_bytes:.0f} B/client, driver peak {s.driver_peak_mb:.0f} MB, "
        f"workers peak {s.tree_peak_mb:.0f} MB"
    )


def sim_table(results: dict[tuple[str, int], RoundStats]) -> list[str]:
    lines = [
        "| server | sampled | server ms/round (range) | server ms per client | "
        "round wall s | replies held MB | aggregate extra MB | context.state B/client | "
        "driver peak RSS MB | process tree peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (arm, n_sampled), s in results.items():
        per_client = statistics.median(s.server_s) * 1e3 / n_sampled if s.server_s else 0.0
        lines.append(
            f"| {arm} | {n_sampled} | {_span(s.server_s)} | {per_client:.2f} | "
            f"{statistics.median(s.wall_s) if s.wall_s else 0:.2f} | {s.replies_mb:.2f} | "
            f"{s.aggregate_extra_mb:.2f} | {s.state_bytes:.0f} | {s.driver_peak_mb:.0f} | "
            f"{s.tree_peak_mb:.0f} |"
        )
    return lines


# -- part "agg" ----------------------------------------------------------------------------------


class NodesGrid(Grid):
    """A Grid that only lists node ids: enough for `configure_train`'s sampling."""

    def __init__(self, n_nodes: int) -> None:
        self._nodes = list(range(1, n_nodes + 1))
        self._run = Run.create_empty(run_id=1)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError

    def send_and_receive(self, messages: Iterable[Message], **kwargs: Any) -> Iterable[Message]:
        raise NotImplementedError


SHAPES = {
    "layer0.weight": (2000, 2000),
    "layer1.weight": (2000, 2000),
    "layer2.weight": (1000, 2000),
    "layer2.bias": (1000,),
}


def _reply(request: Message, arrays: ArrayRecord, count: int) -> Message:
    """A train reply as a SuperNode would send it (reply_to sets the sender's node id)."""
    return Message(
        RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": count})}),
        reply_to=request,
    )


@dataclasses.dataclass
class AggStats:
    aggregate_s: dict[str, list[float]]
    configure_s: dict[str, list[float]]
    extra_mb: dict[str, float]


def time_server_rounds(
    initial: dict[str, np.ndarray], n_clients: int, repeats: int, n_distinct: int = 8
) -> AggStats:
    """Server steps of `repeats` interleaved rounds (after one warm-up round), ours vs Flower's
    FedAvg, on fabricated replies; then one traced round each for the extra peak memory."""
    # Messages outside a running ServerApp need the identity a SuperLink would give them.
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    rng = np.random.default_rng(0)
    # Distinct client payloads, reused cyclically (100 distinct 10M ones would take 4 GB).
    payloads = []
    for _ in range(min(n_distinct, n_clients)):
        noise = {k: rng.normal(0, 0.01, v.shape).astype(np.float32) for k, v in initial.items()}
        payloads.append(ArrayRecord({k: Array(v + noise[k]) for k, v in initial.items()}))
    grid = NodesGrid(n_clients)
    start_arrays = ArrayRecord({k: Array(v) for k, v in initial.items()})

    def make(arm: str) -> Strategy:
        common = {"min_train_nodes": n_clients, "min_available_nodes": n_clients}
        if arm == "flower-fedavg":
            return FedAvg(fraction_evaluate=0.0, **common)  # type: ignore[arg-type]
        return DeclearnMessageStrategy(
            initial_weights=initial,
            client_optimizer={"lrate": 0.1},
            fraction_evaluate=0.0,
            **common,  # type: ignore[arg-type]
        )

    strategies = {arm: make(arm) for arm in ("flower-fedavg", "ours-fedavg")}
    arrays = {arm: start_arrays for arm in strategies}
    stats = AggStats({arm: [] for arm in strategies}, {arm: [] for arm in strategies}, {})

    def one_round(arm: str, rnd: int, traced: bool = False) -> None:
        strategy = strategies[arm]
        t0 = time.perf_counter()
        requests = list(strategy.configure_train(rnd, arrays[arm], ConfigRecord(), grid))
        t1 = time.perf_counter()
        replies = [
            _reply(req, payloads[i % len(payloads)], 100 + i) for i, req in enumerate(requests)
        ]
        if traced:
            tracemalloc.start()
            held, _ = tracemalloc.get_traced_memory()
        t2 = time.perf_counter()
        new, _ = strategy.aggregate_train(rnd, replies)
        t3 = time.perf_counter()
        assert new is not None, f"{arm}: round {rnd} was not aggregated"
        arrays[arm] = new
        if traced:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            stats.extra_mb[arm] = (peak - held) / MB
        elif rnd > 1:  # round 1 warms up
            stats.aggregate_s[arm].append(t3 - t2)
            stats.configure_s[arm].append(t1 - t0)

    order = list(strategies)
    for rnd in range(1, repeats + 2):
        for arm in order if rnd % 2 else order[::-1]:
            one_round(arm, rnd)
    for arm in strategies:
        one_round(arm, repeats + 2, traced=True)
    return stats


def run_agg(n_clients: int, repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    initial = {k: rng.normal(0, 0.05, s).astype(np.float32) for k, s in SHAPES.items()}
    n_params = sum(v.size for v in initial.values())
    model_mb = n_params * 4 / MB
    stats = time_server_rounds(initial, n_clients, repeats)
    times = stats.aggregate_s
    ratios = [o / f for o, f in zip(times["ours-fedavg"], times["flower-fedavg"], strict=True)]
    lines = [
        f"Aggregation of {n_clients} replies of a {n_params / 1e6:.1f}M-parameter model "
        f"({model_mb:.0f} MB), {repeats} interleaved rounds:",
        "",
        "| server | aggregate_train ms (median, range) | configure_train ms | "
        "extra peak memory in aggregate_train |",
        "|---|---|---|---|",
    ]
    for arm in times:
        extra = stats.extra_mb[arm]
        lines.append(
            f"| {arm} | {_span(times[arm])} | {_span(stats.configure_s[arm])} | "
            f"{extra:.0f} MB ({extra / model_mb:.1f} model sizes) |"
        )
    lines += [
        "",
        f"ratio ours / Flower FedAvg, per round: median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); goal <= 1.1",
    ]
    return lines


def run_server_scaling(sampled: tuple[int, ...], repeats: int) -> list[str]:
    """Server time per round (configure + aggregate) of the small model, in-process, by clients."""
    module = build_module("blobs")
    initial = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    lines = [
        "Server steps per round, in-process (no Ray), logistic regression (610 weights), "
        f"{repeats} interleaved rounds:",
        "",
        "| sampled | Flower FedAvg ms | ours (FedAvg) ms | ours per client ms | ours / Flower "
        "| aggregate extra KB: Flower / ours |",
        "|---|---|---|---|---|---|",
    ]
    for n_clients in sampled:
        stats = time_server_rounds(initial, n_clients, repeats, n_distinct=n_clients)
        total = {
            arm: [a + c for a, c in zip(agg, stats.configure_s[arm], strict=True)]
            for arm, agg in stats.aggregate_s.items()
        }
        ours, flower = total["ours-fedavg"], total["flower-fedavg"]
        ratio = statistics.median(ours) / statistics.median(flower)
        extra = {arm: stats.extra_mb[arm] * 1024 for arm in stats.extra_mb}
        lines.append(
            f"| {n_clients} | {_span(flower)} | {_span(ours)} | "
            f"{statistics.median(ours) * 1e3 / n_clients:.3f} | {ratio:.2f} "
            f"| {extra['flower-fedavg']:.0f} / {extra['ours-fedavg']:.0f} |"
        )
    return lines


def run_memory(sampled: tuple[int, ...], n_params: int) -> list[str]:
    """Extra peak memory of `aggregate_train` by sampled clients, for a model of `n_params`."""
    rng = np.random.default_rng(0)
    initial = {
        "w": rng.normal(0, 0.1, (n_params // 10 - 1, 10)).astype(np.float32),
        "b": np.zeros(10, dtype=np.float32),
    }
    model_kb = sum(v.nbytes for v in initial.values()) / 1024
    lines = [
        f"Extra peak memory of aggregate_train (tracemalloc), a {model_kb:.0f} KB model "
        "(float32), fabricated replies:",
        "",
        "| sampled | Flower FedAvg KB (model sizes) | ours KB (model sizes) | "
        "one copy per client would be KB |",
        "|---|---|---|---|",
    ]
    for n_clients in sampled:
        extra = time_server_rounds(initial, n_clients, repeats=1).extra_mb
        flower, ours = extra["flower-fedavg"] * 1024, extra["ours-fedavg"] * 1024
        lines.append(
            f"| {n_clients} | {flower:.0f} ({flower / model_kb:.1f}) | "
            f"{ours:.0f} ({ours / model_kb:.1f}) | {n_clients * model_kb:.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("sim", "agg", "server", "memory", "all"), default="all")
    parser.add_argument(
        "--rounds", type=int, default=5, help="sim: rounds (the first warms up, the last is traced)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="agg: timed rounds per arm")
    parser.add_argument("--clients", type=int, default=100, help="agg: replies per round")
    parser.add_argument("--nodes", type=int, default=N_NODES, help="sim: simulated clients")
    parser.add_argument("--sampled", type=int, nargs="+", default=list(SAMPLED))
    args = parser.parse_args(argv)
    for name in ("flwr", "ray"):
        logging.getLogger(name).setLevel(logging.WARNING)
    lines: list[str] = []
    if args.part in ("server", "all"):
        lines += run_server_scaling(tuple(args.sampled), args.repeats)
        print("\n".join(lines), flush=True)
    if args.part in ("memory", "all"):
        memory_lines = run_memory(tuple(args.sampled), 100_000)
        print("\n".join(memory_lines), flush=True)
        lines += ["", *memory_lines]
    if args.part in ("agg", "all"):
        agg_lines = run_agg(args.clients, args.repeats)
        print("\n".join(agg_lines), flush=True)
        lines += ["", *agg_lines]
    if args.part in ("sim", "all"):
        results = run_sim(args.rounds, args.nodes, tuple(args.sampled))
        sim_lines = sim_table(results)
        print("\n".join(sim_lines))
        lines += ["", *sim_lines]
    return 0


if __name__ == "__main__":
    sys.exit(main())
