"""Time per `OptiModule.run` on a 1M-parameter TorchVector: ours vs declearn 2.9.1.

Each module gets the same float32 gradients in both libraries. Calls are
interleaved (ours, declearn, ours, ...) and the median of each side is
reported with their ratio (goal: ours / declearn <= 1.0).

Run: `python benchmarks/optimizer_modules.py [--repeats N] [--only adam yogi ...]` (needs
torch and declearn).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
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


def _ours(name: str, config: dict[str, Any], grads: list[Any]) -> Callable[[Any], Any]:
    from flwr_declearn.model.torch import TorchVector
    from flwr_declearn.optimizer.modules import OptiModule

    module = OptiModule.from_specs(name, config)
    if name == "scaffold-client":
        module.process_aux_var({"state": TorchVector(grads[-1]) * 0.5})
    return module.run


def _declearn(name: str, config: dict[str, Any], grads: list[Any]) -> Callable[[Any], Any]:
    from declearn.model.torch import TorchVector
    from declearn.optimizer.modules import OptiModule, ScaffoldAuxVar

    module = OptiModule.from_specs(name, config)
    if name == "scaffold-client":
        module.process_aux_var(ScaffoldAuxVar(state=TorchVector(grads[-1]) * 0.5))
    return module.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per side")
    parser.add_argument("--only", nargs="+", default=None, help="labels of the cases to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from declearn.model.torch import TorchVector as TheirVector

    from flwr_declearn.model.torch import TorchVector as OurVector

    raw = _gradients(4)
    ours_in = [OurVector(g) for g in raw]
    theirs_in = [TheirVector(g) for g in raw]
    n_params = sum(v.numel() for v in raw[0].values())
    print(f"OptiModule.run on a TorchVector of {n_params:,} float32 parameters, 1 thread")
    print(f"{'module':<26}{'ours (ms)':>11}{'declearn (ms)':>15}{'ratio':>8}")
    for label, name, config, factor in CASES:
        if args.only and label not in args.only:
            continue
        repeats = max(3, int(args.repeats * factor))
        ours = _ours(name, config, raw)
        theirs = _declearn(name, config, raw)
        for i in range(2):  # warm-up
            ours(ours_in[i % 4])
            theirs(theirs_in[i % 4])
        t_ours, t_theirs = [], []
        gc.collect()
        gc.disable()  # no collector pauses inside timed calls
        for i in range(repeats):
            start = time.perf_counter()
            ours(ours_in[i % 4])
            t_ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs(theirs_in[i % 4])
            t_theirs.append(time.perf_counter() - start)
        gc.enable()
        med_ours, med_theirs = statistics.median(t_ours), statistics.median(t_theirs)
        print(
            f"{label:<26}{med_ours * 1e3:>11.3f}{med_theirs * 1e3:>15.3f}"
            f"{med_ours / med_theirs:>8.2f}"
        )


if __name__ == "__main__":
    main()
