"""Time per `OptiModule.run` on a 1M-parameter TorchVector: ours vs declearn 2.9.1.

Each module gets the same float32 gradients in both libraries (each side its
own copy, so that no side reads what another just brought into the CPU's
cache). Calls are interleaved, the side that goes first changing each time,
and the median of each side is reported with their ratio (goal: ours /
declearn <= 1.0). With
`--baseline REV`, a third arm runs this package as of git revision `REV`
(extracted under another package name, imported in the same process), and
`ours / baseline` compares our code with its own past on the same calls.

Run: `python benchmarks/optimizer_modules.py [--repeats N] [--only adam yogi ...]
[--baseline 5811925^]` (needs torch and declearn; `--baseline` needs git).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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


def _baseline_package(rev: str) -> str:
    """Extract `flwr_declearn` at git `rev` as package `flwr_declearn_baseline`; return its name."""
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "flwr_declearn"], capture_output=True, check=True
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="baseline-"))
    atexit.register(shutil.rmtree, tmp, True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(tmp, filter="data")
    name = "flwr_declearn_baseline"
    pkg = (tmp / "flwr_declearn").rename(tmp / name)
    for path in pkg.rglob("*.py"):
        path.write_text(path.read_text().replace("flwr_declearn", name))
    sys.path.insert(0, str(tmp))
    return name


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per side")
    parser.add_argument("--only", nargs="+", default=None, help="labels of the cases to run")
    parser.add_argument("--baseline", default=None, help="git revision to time as a third arm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    baseline = _baseline_package(args.baseline) if args.baseline else None
    raw = _gradients(4)
    n_params = sum(v.numel() for v in raw[0].values())
    print(f"OptiModule.run on a TorchVector of {n_params:,} float32 parameters, 1 thread")
    head = f"{'module':<26}{'ours (ms)':>11}{'declearn (ms)':>15}{'ratio':>8}"
    if baseline:
        head += f"{'baseline (ms)':>15}{'ours/base':>11}"
    print(head)
    for label, name, config, factor in CASES:
        if args.only and label not in args.only:
            continue
        repeats = max(3, int(args.repeats * factor))
        arms: list[tuple[Callable[[Any], Any], list[Any]]] = [
            _ours("flwr_declearn", name, config, raw),
            _declearn(name, config, raw),
        ]
        if baseline:
            arms.append(_ours(baseline, name, config, raw))
        for i in range(2):  # warm-up
            for run, inputs in arms:
                run(inputs[i % 4])
        times: list[list[float]] = [[] for _ in arms]
        gc.collect()
        gc.disable()  # no collector pauses inside timed calls
        for i in range(repeats):
            first = i % len(arms)
            for j in [*range(first, len(arms)), *range(first)]:
                (run, inputs), spent = arms[j], times[j]
                start = time.perf_counter()
                run(inputs[i % 4])
                spent.append(time.perf_counter() - start)
        gc.enable()
        med = [statistics.median(t) for t in times]
        line = f"{label:<26}{med[0] * 1e3:>11.3f}{med[1] * 1e3:>15.3f}{med[0] / med[1]:>8.2f}"
        if baseline:
            line += f"{med[2] * 1e3:>15.3f}{med[0] / med[2]:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
