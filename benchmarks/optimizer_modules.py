"""Time per `OptiModule.run` on a 1M-parameter TorchVector: ours vs declearn 2.9.1.

Each module gets the same float32 gradients in every arm (each arm its own
copy, so that no arm reads what another just brought into the CPU's cache).
Each round calls every arm once, in a fresh random order; a ratio is the
median over rounds of ours / the other arm's time in the same round (paired
calls, so that slow spells of a shared machine cancel). Arms:

- declearn: declearn 2.9.1's module (goal: ours / declearn <= 1.0);
- `--baseline REV`: this package as of git revision `REV`, extracted under
  another name (`benchmarks/_baseline.py`) and imported in the same process:
  our code against its own past on the same calls; `shift` is how much
  ours / declearn moved from baseline / declearn (median over rounds of
  `(ours - baseline) / declearn`), i.e. the change of the reported ratio;
- `--control`: ours again (a second module of the current code): an A/A
  pair, whose distance from 1.00 is the resolution of the run.

`--processes N` runs the whole measurement in N fresh interpreters one after
the other (where the allocator puts each arm's arrays varies between
processes) and prints the median and the range of their figures.

Run: `python benchmarks/optimizer_modules.py [--repeats N] [--only adam yogi ...]
[--baseline 5811925^] [--control] [--processes 5]` (needs torch and declearn;
`--baseline` needs git).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from _baseline import extract, use

SHAPES = {"fc1.weight": (1000, 784), "fc1.bias": (1000,), "fc2.weight": (216, 1000)}

# (label, module name, config (same for both libraries), share of --repeats)
CASES: list[tuple[str, str, dict[str, Any], float]] = [
    ("adam", "adam", {}, 1.0),
    ("adam (amsgrad)", "adam", {"amsgrad": True}, 1.0),
    ("yogi", "yogi", {}, 1.0),
    ("adagrad", "adagrad", {}, 1.0),
    ("rmsprop", "rmsprop", {}, 1.0),
    ("momentum", "momentum", {}, 1.0),
    ("momentum (nesterov)", "momentum", {"nesterov": True}, 1.0),
    ("ewma", "ewma", {}, 1.0),
    ("yogi-momentum", "yogi-momentum", {}, 1.0),
    ("l2-clipping", "l2-clipping", {"max_norm": 1.0}, 1.0),
    ("l2-global-clipping", "l2-global-clipping", {"max_norm": 1.0}, 1.0),
    ("scaffold-client", "scaffold-client", {}, 1.0),
    ("scaffold-server (identity)", "scaffold-server", {}, 1.0),
    # last: their large float64 draws perturb the allocator for the cases after them
    ("gaussian-noise (seeded)", "gaussian-noise", {"safe_mode": False, "seed": 0}, 1.0),
    ("gaussian-noise (safe)", "gaussian-noise", {"safe_mode": True}, 0.05),
]


def _gradients(n_sets: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [{k: torch.randn(s, generator=gen) for k, s in SHAPES.items()} for _ in range(n_sets)]


def _ours(package: str, name: str, config: dict[str, Any], grads: list[Any]) -> Any:
    vector = importlib.import_module(f"{package}.model.torch").TorchVector
    module = importlib.import_module(f"{package}.optimizer.modules").OptiModule
    module = module.from_specs(name, config)
    if name == "scaffold-client":
        module.process_aux_var({"state": vector(grads[-1]) * 0.5})
    return module.run, [vector(_copy(g)) for g in grads]


def _copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: t.clone() for k, t in tensors.items()}


def _declearn(name: str, config: dict[str, Any], grads: list[Any]) -> Any:
    from declearn.model.torch import TorchVector
    from declearn.optimizer.modules import OptiModule, ScaffoldAuxVar

    module = OptiModule.from_specs(name, config)
    if name == "scaffold-client":
        module.process_aux_var(ScaffoldAuxVar(state=TorchVector(grads[-1]) * 0.5))
    return module.run, [TorchVector(_copy(g)) for g in grads]


def _time_case(
    arms: list[tuple[Callable[[Any], Any], list[Any]]], repeats: int
) -> list[list[float]]:
    """Time `repeats` rounds of one call per arm, in a random order; return times per arm."""
    for i in range(2):  # warm-up
        for run, inputs in arms:
            run(inputs[i % 4])
    times: list[list[float]] = [[] for _ in arms]
    gc.collect()
    gc.disable()  # no collector pauses inside timed calls
    order = list(range(len(arms)))
    shuffle = random.Random(0).shuffle
    for i in range(repeats):
        shuffle(order)  # each arm follows each other arm equally often, in any position
        for j in order:
            (run, inputs), spent = arms[j], times[j]
            start = time.perf_counter()
            run(inputs[i % 4])
            spent.append(time.perf_counter() - start)
    gc.enable()
    return times


def _paired_ratio(ours: list[float], other: list[float]) -> float:
    """Median over rounds of ours / other, each round's two calls timed side by side."""
    return statistics.median(a / b for a, b in zip(ours, other, strict=True))


def _arm(arm: str, baseline: str | None, name: str, config: dict[str, Any], raw: Any) -> Any:
    """Build one arm: its module's `run` and its own copy of the gradients."""
    if arm == "declearn":
        return _declearn(name, config, raw)
    return _ours(baseline if arm == "baseline" else "flwr_declearn", name, config, raw)


def measure(args: argparse.Namespace, baseline: str | None) -> dict[str, dict[str, Any]]:
    """Time every case in this process; return per case the arms' medians (s) and ratios."""
    torch.set_num_threads(1)
    raw = _gradients(4)
    rng = random.Random(args.seed)
    results: dict[str, dict[str, Any]] = {}
    for label, name, config, factor in CASES:
        if args.only and label not in args.only:
            continue
        names = ["ours", "declearn", *(["baseline"] if baseline else [])]
        names += ["ours again"] if args.control else []
        # Built in an order drawn per process: where the allocator puts an arm's
        # arrays (and so its page faults and cache conflicts) varies with it.
        built = {
            arm: _arm(arm, baseline, name, config, raw) for arm in rng.sample(names, len(names))
        }
        arms = {arm: built[arm] for arm in names}
        repeats = max(3, int(args.repeats * factor))
        times = dict(zip(arms, _time_case(list(arms.values()), repeats), strict=True))
        results[label] = {
            "median": {arm: statistics.median(t) for arm, t in times.items()},
            "ratio": {arm: _paired_ratio(times["ours"], t) for arm, t in times.items()},
        }
        if baseline:  # how far ours / declearn moved from the baseline's, round by round
            rounds = zip(times["ours"], times["baseline"], times["declearn"], strict=True)
            results[label]["shift"] = statistics.median((o - b) / d for o, b, d in rounds)
    return results


def _spawn(args: argparse.Namespace, baseline_dir: str | None) -> list[dict[str, dict[str, Any]]]:
    """Run `measure` in `args.processes` fresh interpreters, one after the other."""
    runs = []
    for seed in range(args.processes):
        cmd = [sys.executable, __file__, "--worker", "--repeats", str(args.repeats)]
        cmd += ["--seed", str(seed)]
        cmd += ["--only", *args.only] if args.only else []
        cmd += ["--control"] if args.control else []
        cmd += ["--baseline-dir", baseline_dir] if baseline_dir else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.splitlines()[-1]))
    return runs


def _cell(values: list[float], fmt: str) -> str:
    """The median of the processes' figures, and their range when there are several."""
    med = format(statistics.median(values), fmt)
    if len(values) == 1:
        return med
    return f"{med} [{min(values):{fmt}}-{max(values):{fmt}}]"


def report(runs: list[dict[str, dict[str, Any]]]) -> None:
    """Print one row per case: our median time, then each other arm's time and ours / it."""
    arms = list(runs[0][next(iter(runs[0]))]["median"])
    head = f"{'module':<27}{'ours (ms)':>11}"
    for arm in arms[1:]:
        head += f"{arm + ' (ms)':>16}{'ours/' + arm.split()[0]:>22}"
    shift = "shift" in runs[0][next(iter(runs[0]))]
    if shift:
        head += f"{'shift':>24}"
    print(head)
    for label in runs[0]:
        row = (
            f"{label:<27}{statistics.median(r[label]['median']['ours'] for r in runs) * 1e3:>11.3f}"
        )
        for arm in arms[1:]:
            ms = statistics.median(r[label]["median"][arm] for r in runs) * 1e3
            row += f"{ms:>16.3f}{_cell([r[label]['ratio'][arm] for r in runs], '.3f'):>22}"
        if shift:
            row += f" {_cell([r[label]['shift'] for r in runs], '+.3f'):>23}"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per side")
    parser.add_argument("--only", nargs="+", default=None, help="labels of the cases to run")
    parser.add_argument("--baseline", default=None, help="git revision to time as a third arm")
    parser.add_argument("--processes", type=int, default=1, help="fresh processes to pool")
    parser.add_argument("--control", action="store_true", help="add ours again (A/A) as an arm")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        baseline = use(args.baseline_dir) if args.baseline_dir else None
        print(json.dumps(measure(args, baseline)))
        return
    baseline_dir = extract(args.baseline) if args.baseline else None
    n_params = sum(math.prod(s) for s in SHAPES.values())
    print(
        f"OptiModule.run on a TorchVector of {n_params:,} float32 parameters, 1 thread, "
        f"{args.repeats} rounds x {args.processes} process(es); ratios: median over rounds of "
        "paired calls (median [range] over processes)"
    )
    if args.processes == 1:
        runs = [measure(args, use(baseline_dir) if baseline_dir else None)]
    else:
        runs = _spawn(args, baseline_dir)
    report(runs)


if __name__ == "__main__":
    main()
