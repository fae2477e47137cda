"""Non-IID shoot-out: Flower's built-in strategies vs flwr_declearn's, on Flower's Ray engine.

Tasks (download-free, seeded; see `_fedtasks.py`), 30 clients each, with a
held-out test set evaluated by the server after every round:

    digits-a0.1, digits-a1      scikit-learn digits, Dirichlet label split (alpha 0.1 / 1.0),
                                64-32-10 MLP; target 90% test accuracy
    synthetic-1-1, -0.5-0.5     FedProx's Synthetic(alpha, beta), logistic regression;
                                target 70% (about where the FedProx paper's
                                curves for these sets level off)

Participation: 30% of the clients per round (partial), and all of them (full).

Arms (see `_arms.py`): Flower's FedAvg, FedProx, FedAdam, FedYogi, FedAvgM
with a plain torch.optim ClientApp, against ours: FedAvg, FedProx, SCAFFOLD,
server adam, server yogi, server momentum, SCAFFOLD + server adam. All arms
share the model, the splits, the local work (SGD at the task's client
learning rate, `--steps` steps of `--batch` samples), the batches and the
node samples. Hyper-parameter grid (partial participation; each arm is
reported at its best: fewest rounds to the target, then best mean accuracy
over the last 5 rounds):

    FedProx (both)        mu        in {0.01, 0.1}
    adam, yogi (both)     eta       in {0.003, 0.01, 0.03}  (beta 0.9/0.99, tau = eps = 1e-3)
    FedAvgM / momentum    momentum  in {0.5, 0.9}           (server learning rate 1)
    SCAFFOLD              server learning rate (global step size) in {1, 1.5, 2}
    SCAFFOLD + adam       eta       in {0.003, 0.01, 0.03}

Full participation runs each arm at its best partial-participation setting
only (to fit the compute budget). On digits-a0.1 with partial participation,
FedAvg (both), SCAFFOLD (at every grid point) and SCAFFOLD + adam (at its best) run again with
`--seeds - 1` more seeds of the node sampling and batch order, and
`summary.md` gives their rounds to 90% per seed.

Equivalence checks (every setting): ours with the FedAvg config against
Flower's FedAvg, and our FedProx against Flower's FedProx at the same mu;
on the first setting, our adam mapped onto FedAdam (beta_2 = 0, eps = tau =
1e-2, Adam steps from 1: see `_arms.fedadam_mapped_adam`) and our server
momentum against FedAvgM (lrate = server_learning_rate, beta =
server_momentum: the same formula) too. Two comparisons per pair, both
max |w_ours - w_flower| over all weights, per round:

- same replies (`_arms.attach_twin_check`): at every round, Flower's
  strategy aggregates the very replies ours aggregated, from the same
  global weights. Every round of every pair must be within 1e-6, or the
  script exits 1.
- trajectories: the two runs' global weights, each run on its own replies
  (the clients differ too: declearn's SGD vs torch.optim's). float32
  rounding differences grow over the rounds (reported, not checked, except
  in `--quick`).

The noise floor of the trajectories comes from two reference runs per
setting: Flower's FedAvg fed the replies in a shuffled order, and FedAvg
with a float64 sum (see `_arms.REFERENCE_ARMS`), compared with Flower's
FedAvg and ours. `--pairs-only` runs only the pairs and the references (at
both participation levels, no grid); `--quick` runs the pairs and the
references on digits-a0.1, partial participation, 3 rounds, and fails
(exit 1) if any pair differs by more than 1e-6, in a round on the same
replies or in the trajectories.

Outputs (in --out): per setting a CSV of per-round test accuracy and loss
of every run, a learning-curve PNG (matplotlib, if installed) of each arm
at its best, and `summary.md` with the rounds-to-target / final accuracy
tables and the equivalence figures, `equivalence.json` with the per-round
differences (null: a round not checked).

`--seed-runs` reruns only the seed repeats (seeds 0..N-1 in one simulation,
best settings read from the CSV) and `--replot` recomputes the PNGs and
summary tables from the CSVs.

Usage: python benchmarks/noniid.py [--quick | --pairs-only] [--out DIR] [--rounds 50] [--seeds 3]
                                   [--tasks ...]
       python benchmarks/noniid.py --seed-runs | --replot
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # Ray workers inherit it

from _arms import FLOWER_ARMS, REFERENCE_ARMS, RunResult, RunSpec, run_all
from _fedtasks import TaskSpec

TOLERANCE = 1e-6
SEEDED_TASK = "digits-a0.1"
SEEDED_ARMS = ("fedavg", "flower-fedavg", "scaffold", "scaffold+adam")
SEEDED_GRID = ("scaffold",)  # every grid point of these arms gets the seed repeats
TASKS = {
    "digits-a0.1": TaskSpec("digits", 30, 0.1),
    "digits-a1": TaskSpec("digits", 30, 1.0),
    "synthetic-1-1": TaskSpec("synthetic", 30, 1.0, 1.0),
    "synthetic-0.5-0.5": TaskSpec("synthetic", 30, 0.5, 0.5),
}
TARGET = {"digits": 0.90, "synthetic": 0.70}
CLIENT_LR = {"digits": 0.1, "synthetic": 0.01}
GRID: dict[str, list[dict[str, float]]] = {
    "fedavg": [{}],
    "flower-fedavg": [{}],
    "fedprox": [{"mu": 0.01}, {"mu": 0.1}],
    "flower-fedprox": [{"mu": 0.01}, {"mu": 0.1}],
    "scaffold": [{"server_lr": 1.0}, {"server_lr": 1.5}, {"server_lr": 2.0}],
    "adam": [{"eta": 0.003}, {"eta": 0.01}, {"eta": 0.03}],
    "flower-fedadam": [{"eta": 0.003}, {"eta": 0.01}, {"eta": 0.03}],
    "yogi": [{"eta": 0.003}, {"eta": 0.01}, {"eta": 0.03}],
    "flower-fedyogi": [{"eta": 0.003}, {"eta": 0.01}, {"eta": 0.03}],
    "momentum": [{"server_lr": 1.0, "momentum": 0.5}, {"server_lr": 1.0, "momentum": 0.9}],
    "flower-fedavgm": [
        {"server_lr": 1.0, "momentum": 0.5},
        {"server_lr": 1.0, "momentum": 0.9},
    ],
    "scaffold+adam": [{"eta": 0.003}, {"eta": 0.01}, {"eta": 0.03}],
}
# One colour per algorithm: ours solid, Flower's dashed.
COLORS = {
    "fedavg": "tab:grey",
    "fedprox": "tab:brown",
    "fedadam": "tab:blue",
    "adam": "tab:blue",
    "fedyogi": "tab:green",
    "yogi": "tab:green",
    "fedavgm": "tab:orange",
    "momentum": "tab:orange",
    "scaffold": "tab:red",
    "scaffold+adam": "tab:purple",
}
# Pairs compared weight for weight: (ours, Flower's, shared params).
PAIRS = [("fedavg", "flower-fedavg", {}), ("fedprox", "flower-fedprox", {"mu": 0.01})]
# Noise floor of the trajectories: (a, b) compared weight for weight.
NOISE_PAIRS = [
    ("flower-fedavg-permuted", "flower-fedavg"),
    ("fedavg-float64", "flower-fedavg"),
    ("fedavg", "fedavg-float64"),
]
MAPPED_PAIRS = [
    ("adam-as-fedadam", "flower-fedadam", {"eta": 0.03, "beta_2": 0.0, "tau": 1e-2}),
    ("momentum", "flower-fedavgm", {"server_lr": 1.0, "momentum": 0.9}),
]


@dataclasses.dataclass
class Settings:
    rounds: int
    batch: int
    steps: int


def _spec(
    arm: str,
    params: dict[str, float],
    task: TaskSpec,
    fraction: float,
    s: Settings,
    keep: bool = False,
) -> RunSpec:
    lr = CLIENT_LR[task.kind]
    return RunSpec(arm, tuple(params.items()), task, fraction, s.rounds, lr, s.batch, s.steps, keep)


def rounds_to_target(result: RunResult) -> int | None:
    target = TARGET[result.spec.task.kind]
    reached = [r for r, acc in sorted(result.accuracy.items()) if r > 0 and acc >= target - 1e-9]
    return reached[0] if reached else None


def tail_accuracy(result: RunResult, n: int = 5) -> float:
    accs = [result.accuracy[r] for r in sorted(result.accuracy)][-n:]
    return float(np.mean(accs)) if accs else float("nan")


def _rank(result: RunResult) -> tuple[float, float]:
    reached = rounds_to_target(result)
    tail = tail_accuracy(result)
    return (math.inf if reached is None else reached, -(tail if math.isfinite(tail) else -1.0))


def best_by_arm(results: list[RunResult]) -> dict[str, RunResult]:
    best: dict[str, RunResult] = {}
    for res in results:
        if (
            res.error is not None
            or res.spec.arm in ("adam-as-fedadam", *REFERENCE_ARMS)
            or "tau" in res.spec.param
        ):
            continue
        if res.spec.arm not in best or _rank(res) < _rank(best[res.spec.arm]):
            best[res.spec.arm] = res
    return best


def max_diff(a: RunResult, b: RunResult) -> list[float]:
    """Max |a - b| over all weights, per round (round 0 included)."""
    out = []
    for rnd in sorted(set(a.weights) & set(b.weights)):
        wa, wb = a.weights[rnd], b.weights[rnd]
        if set(wa) != set(wb):
            raise ValueError(f"weight names differ: {sorted(wa)} vs {sorted(wb)}")
        out.append(max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa))
    return out


class Plan:
    """The runs, chosen lazily: the grid at partial participation, then the best at full."""

    def __init__(
        self, tasks: list[str], settings: Settings, pairs_only: bool, seeds: int, full: bool = True
    ) -> None:
        self.tasks, self.settings, self.pairs_only, self.seeds = tasks, settings, pairs_only, seeds
        self.full = full  # also run at full participation
        self.results: list[RunResult] = []

    def record(self, result: RunResult) -> None:
        self.results.append(result)
        acc = result.accuracy.get(result.spec.rounds, float("nan"))
        status = "FAILED" if result.error else f"final acc {acc:.3f}"
        print(f"  {result.spec.run_id}: {result.seconds:.1f}s, {status}", flush=True)
        if result.error:
            print(result.error, flush=True)

    def pairs(self, first: bool) -> list[tuple[str, str, dict[str, float]]]:
        return PAIRS + MAPPED_PAIRS if first else PAIRS

    def __iter__(self) -> Iterator[RunSpec]:
        s = self.settings
        for index, name in enumerate(self.tasks):
            task = TASKS[name]
            pair_runs = [
                (arm, params)
                for ours, flower, params in self.pairs(index == 0)
                for arm in (ours, flower)
            ]
            for arm, params in pair_runs + [(arm, {}) for arm in REFERENCE_ARMS]:
                yield _spec(arm, params, task, 0.3, s, keep=True)
            if self.pairs_only:
                for arm in ("fedavg", "flower-fedavg", *REFERENCE_ARMS) if self.full else ():
                    yield _spec(arm, {}, task, 1.0, s, keep=True)
                continue
            done = {(arm, tuple(p.items())) for arm, p in pair_runs}
            for arm, grid in GRID.items():
                for params in grid:
                    if (arm, tuple(params.items())) not in done:
                        yield _spec(arm, params, task, 0.3, s)
            partial = [r for r in self.results if r.spec.task == task]
            best_partial = best_by_arm(partial)
            if name == SEEDED_TASK:
                for seed in range(1, self.seeds):
                    for arm in SEEDED_ARMS:
                        if arm in best_partial:
                            grid = (
                                GRID[arm] if arm in SEEDED_GRID else [best_partial[arm].spec.param]
                            )
                            for params in grid:
                                spec = _spec(arm, params, task, 0.3, s)
                                yield dataclasses.replace(spec, seed=seed)
            for arm, best in best_partial.items():
                keep = arm in ("fedavg", "flower-fedavg")
                yield _spec(arm, best.spec.param, task, 1.0, s, keep=keep)
            for arm in REFERENCE_ARMS:
                yield _spec(arm, {}, task, 1.0, s, keep=True)


# -- reporting -----------------------------------------------------------------------------------


def _setting(result: RunResult) -> str:
    return f"{result.spec.task.label}-{'partial' if result.spec.fraction < 1 else 'full'}"


def seeds_table(results: list[RunResult], repeats: list[RunResult] | None = None) -> list[str]:
    """Rounds to the target per seed of `SEEDED_ARMS`: at their best (from the seed-0 runs of
    `results`), and at every grid point for `SEEDED_GRID`'s arms; the runs per seed come from
    `repeats` when given, else from `results`."""
    runs = [r for r in results if r.spec.task == TASKS[SEEDED_TASK] and r.spec.fraction < 1]
    best = best_by_arm([r for r in runs if r.spec.seed == 0])
    if repeats is not None:
        runs = repeats
    seeds = sorted({r.spec.seed for r in runs})
    if len(seeds) < 2:
        return []
    lines = [
        f"## {SEEDED_TASK}-partial: rounds to 90% by seed (sampling and batch order)",
        "",
        "| arm | params | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | / FedAvg's |",
        "|---|---|" + "---|" * (len(seeds) + 2),
    ]
    rows: list[tuple[str, tuple[tuple[str, float], ...]]] = []
    for arm in SEEDED_ARMS:
        grid = [tuple(p.items()) for p in GRID[arm]] if arm in SEEDED_GRID else []
        chosen = [best[arm].spec.params] if arm in best else []
        for params in chosen + [p for p in grid if p not in chosen]:
            if any((r.spec.arm, r.spec.params) == (arm, params) for r in runs):
                rows.append((arm, params))
    fedavg: list[int] = []
    for arm, params in rows:
        rounds = max(r.spec.rounds for r in runs if r.spec.arm == arm)
        reached = []
        for seed in seeds:
            match = [
                r for r in runs if (r.spec.seed, r.spec.arm, r.spec.params) == (seed, arm, params)
            ]
            reached.append(rounds_to_target(match[0]) if match else None)
        cells = [str(n) if n is not None else f"> {rounds}" for n in reached]
        numbers = [n if n is not None else rounds + 1 for n in reached]
        if arm == "fedavg":
            fedavg = numbers
        shown = ", ".join(f"{k}={v:g}" for k, v in params) or "-"
        mean = f"{np.mean(numbers):.1f}" + ("" if all(n is not None for n in reached) else "+")
        ratio = "-"
        if len(fedavg) == len(numbers):
            per_seed = [n / f for n, f in zip(numbers, fedavg, strict=True)]
            ratio = " / ".join(f"{r:.2f}" for r in per_seed) + f" (mean {np.mean(per_seed):.2f})"
        lines.append(f"| {arm} | {shown} | " + " | ".join(cells) + f" | {mean} | {ratio} |")
    return [*lines, ""]


def write_csv(path: Path, results: list[RunResult]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arm", "params", "seed", "round", "test_accuracy", "test_loss"])
        for res in results:
            params = ";".join(f"{k}={v:g}" for k, v in res.spec.params)
            for rnd in sorted(res.accuracy):
                acc, loss = f"{res.accuracy[rnd]:.6f}", f"{res.loss[rnd]:.6f}"
                writer.writerow([res.spec.arm, params, res.spec.seed, rnd, acc, loss])


def plot(path: Path, title: str, best: dict[str, RunResult], target: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for arm, res in sorted(best.items()):
        rounds = sorted(res.accuracy)
        style = "--" if arm in FLOWER_ARMS else "-"
        ax.plot(
            rounds,
            [res.accuracy[r] for r in rounds],
            style,
            label=arm,
            linewidth=1.3,
            color=COLORS[arm.removeprefix("flower-")],
        )
    ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def table(results: list[RunResult]) -> list[str]:
    best = best_by_arm(results)
    lines = [
        "| arm | best params | rounds to target | final acc | mean acc, last 5 |",
        "|---|---|---|---|---|",
    ]
    for arm, res in sorted(best.items(), key=lambda item: _rank(item[1])):
        params = ", ".join(f"{k}={v:g}" for k, v in res.spec.params) or "-"
        reached = rounds_to_target(res)
        final = res.accuracy.get(res.spec.rounds, float("nan"))
        lines.append(
            f"| {arm} | {params} | {reached if reached is not None else f'> {res.spec.rounds}'} "
            f"| {final:.3f} | {tail_accuracy(res):.3f} |"
        )
    return lines


def _trajectory(diffs: list[float]) -> str:
    """Rounds 1-3, then every 10th and the last, and the max (diffs[0] is round 0)."""
    if len(diffs) <= 8:
        return ", ".join(f"{d:.1e}" for d in diffs[1:])
    marks = sorted({r for r in range(10, len(diffs), 10)} | {len(diffs) - 1})
    later = ", ".join(f"r{r} {diffs[r]:.1e}" for r in marks)
    return f"{', '.join(f'{d:.1e}' for d in diffs[1:4])}; {later}; max {max(diffs):.1e}"


def _finite_max(values: list[float]) -> float:
    return max((v for v in values if math.isfinite(v)), default=float("nan"))


def equivalence(results: list[RunResult]) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """Tables and data of the pairs (trajectories and same-reply rounds) and of the noise floor."""
    index = {(_setting(r), r.spec.seed, r.spec.arm, r.spec.params): r for r in results}
    lines = [
        "Same replies: at every round, Flower's strategy aggregates the replies ours aggregated, "
        "from the same global weights (max over rounds of max |w_ours - w_Flower|, and the worst "
        "round). Trajectories: the two runs' global weights, each on its own replies.",
        "",
        "| setting | ours | Flower | params | same replies: max (worst round) "
        "| vs the float64 mean: max abs, ours / Flower (share of weights rounded from it "
        "exactly, mean over rounds) | trajectories: max abs diff by round |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, list[dict[str, Any]]] = {"pairs": [], "noise": []}
    for res in results:
        for ours, flower, _ in PAIRS + MAPPED_PAIRS:
            if res.spec.arm != ours or not res.weights:
                continue
            key = (_setting(res), res.spec.seed, flower, res.spec.params)
            if key not in index or not index[key].weights:
                continue
            diffs = max_diff(res, index[key])
            rounds = list(range(1, res.spec.rounds + 1))
            checks = [res.checks.get(r) for r in rounds]
            nan = float("nan")
            same = [c.vs_flower if c else nan for c in checks]
            exact = [
                (c.ours_vs_exact, c.flower_vs_exact) if c else (float("nan"),) * 2 for c in checks
            ]
            data["pairs"].append(
                {
                    "setting": _setting(res),
                    "ours": ours,
                    "flower": flower,
                    "params": dict(res.spec.params),
                    "trajectory": diffs[1:],
                    "same_replies": same,
                    "ours_vs_float64": [e[0] for e in exact],
                    "flower_vs_float64": [e[1] for e in exact],
                    "ours_rounded_share": [c.ours_rounded if c else nan for c in checks],
                    "flower_rounded_share": [c.flower_rounded if c else nan for c in checks],
                }
            )
            worst_round = rounds[int(np.nanargmax(same))] if any(map(math.isfinite, same)) else 0
            missing = sum(1 for v in same if not math.isfinite(v))
            same_cell = f"{_finite_max(same):.1e} (r{worst_round})" + (
                f", {missing} round(s) unchecked" if missing else ""
            )
            ours_x = _finite_max([e[0] for e in exact])
            flower_x = _finite_max([e[1] for e in exact])
            exact_cell = "-"
            if not math.isnan(ours_x):
                share_ours = np.nanmean(data["pairs"][-1]["ours_rounded_share"])
                share_flower = np.nanmean(data["pairs"][-1]["flower_rounded_share"])
                exact_cell = (
                    f"{ours_x:.1e} / {flower_x:.1e} ({share_ours:.1%} / {share_flower:.1%})"
                )
            hps = ", ".join(f"{k}={v:g}" for k, v in res.spec.params) or "-"
            lines.append(
                f"| {_setting(res)} | {ours} | {flower} | {hps} | {same_cell} | {exact_cell} "
                f"| {_trajectory(diffs)} |"
            )
    lines += [
        "",
        "Noise floor (trajectories, max |a - b| over all weights by round): Flower's FedAvg "
        "against itself with the replies summed in a shuffled order, and against FedAvg with "
        "a float64 sum (both with Flower's plain clients); ours against the float64 one.",
        "",
        "| setting | a | b | max abs diff by round |",
        "|---|---|---|---|",
    ]
    for a, b in NOISE_PAIRS:
        for res in results:
            if res.spec.arm != a or not res.weights:
                continue
            key = (_setting(res), res.spec.seed, b, res.spec.params)
            if key not in index or not index[key].weights:
                continue
            diffs = max_diff(res, index[key])
            row = {"setting": _setting(res), "a": a, "b": b, "trajectory": diffs[1:]}
            data["noise"].append(row)
            lines.append(f"| {_setting(res)} | {a} | {b} | {_trajectory(diffs)} |")
    return lines, data


def report(
    results: list[RunResult], out: Path, settings: Settings, seconds: float
) -> dict[str, list[dict[str, Any]]]:
    out.mkdir(parents=True, exist_ok=True)
    by_setting: dict[str, list[RunResult]] = {}
    for res in results:
        if res.spec.seed == 0:
            by_setting.setdefault(_setting(res), []).append(res)
    lines = [
        f"# Non-IID shoot-out ({settings.rounds} rounds, {settings.steps} local SGD steps of "
        f"batch {settings.batch}, 30 clients; {seconds:.0f}s)",
        "",
    ]
    for name, group in by_setting.items():
        write_csv(out / f"{name}.csv", group)
        target = TARGET[group[0].spec.task.kind]
        drawn = plot(out / f"{name}.png", name, best_by_arm(group), target)
        lines += [f"## {name} (target {target:.0%})", ""]
        lines += table(group)
        if drawn:
            lines += ["", f"![{name}]({name}.png)"]
        failed = [r.spec.run_id for r in group if r.error]
        if failed:
            lines += ["", f"Failed runs: {failed}"]
        lines.append("")
    seeded = [r for r in results if r.spec.task == TASKS[SEEDED_TASK] and r.spec.fraction < 1]
    if len({r.spec.seed for r in seeded}) > 1:
        write_csv(out / f"{SEEDED_TASK}-partial-seeds.csv", [r for r in seeded if r.spec.seed])
    lines += seeds_table(results)
    eq_lines, data = equivalence(results)
    lines += ["## Equivalence with Flower's strategies (global weights, round for round)", ""]
    lines += [*eq_lines, ""]
    (out / "summary.md").write_text("\n".join(lines))
    (out / "equivalence.json").write_text(json.dumps(_no_nan(data), indent=1) + "\n")
    print("\n".join(lines))
    return data


def _no_nan(value: Any) -> Any:
    """JSON-safe copy: NaN (a round not checked) becomes null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def verdict(data: dict[str, list[dict[str, Any]]], quick: bool) -> list[str]:
    """The failed equivalence checks: every pair's same-reply difference, at every round,
    within TOLERANCE (and, in `quick`'s 3 rounds, the trajectories too)."""
    faults = []
    found = {(p["ours"], p["flower"]) for p in data["pairs"]}
    missing = {(o, f) for o, f, _ in PAIRS + MAPPED_PAIRS} - found
    if missing:
        faults.append(f"pairs not compared: {sorted(missing)}")
    for pair in data["pairs"]:
        name = f"{pair['setting']} {pair['ours']} vs {pair['flower']}"
        same = pair["same_replies"]
        if not same or not all(math.isfinite(v) and v <= TOLERANCE for v in same):
            faults.append(f"{name}: same replies differ by {same}")
        if quick and max(pair["trajectory"]) > TOLERANCE:
            faults.append(f"{name}: trajectories differ by {pair['trajectory']}")
    return faults


def read_csv(path: Path) -> list[RunResult]:
    """Rebuild a setting's results (curves only) from its CSV."""
    name = path.stem.removesuffix("-seeds")
    label, participation = name.rsplit("-", 1)
    task = next(t for t in TASKS.values() if t.label == label)
    runs: dict[tuple[str, str], RunResult] = {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            seed = int(row.get("seed") or 0)
            key = (row["arm"], row["params"], str(seed))
            if key not in runs:
                params = tuple(
                    (k, float(v)) for k, v in (p.split("=") for p in row["params"].split(";") if p)
                )
                fraction = 0.3 if participation == "partial" else 1.0
                spec = RunSpec(row["arm"], params, task, fraction, 0, 0.0, 1, 1, seed=seed)
                runs[key] = RunResult(spec)
            res = runs[key]
            rnd = int(row["round"])
            res.accuracy[rnd], res.loss[rnd] = float(row["test_accuracy"]), float(row["test_loss"])
    for res in runs.values():
        res.spec = dataclasses.replace(res.spec, rounds=max(res.accuracy))
    return list(runs.values())


def replot(out: Path) -> None:
    """Redraw the PNGs and recompute summary.md's tables from the CSVs.

    The equivalence section (it needs the weights, not in the CSVs) is kept
    from the existing summary.md.
    """
    summary = out / "summary.md"
    old = summary.read_text() if summary.exists() else ""
    lines = [old.splitlines()[0] if old else "# Non-IID shoot-out", ""]
    lines += ["(Tables recomputed from the CSVs by `noniid.py --replot`.)", ""]
    everything: list[RunResult] = []
    repeats: list[RunResult] | None = None
    for path in sorted(out.glob("*.csv"), key=lambda p: _ORDER.get(p.stem, 99)):
        results = read_csv(path)
        if path.stem.endswith("-seeds"):
            repeats = results
            continue
        everything += results
        target = TARGET[results[0].spec.task.kind]
        plot(path.with_suffix(".png"), path.stem, best_by_arm(results), target)
        lines += [f"## {path.stem} (target {target:.0%})", "", *table(results), ""]
        lines += [f"![{path.stem}]({path.stem}.png)", ""]
    if repeats is not None and {r.spec.seed for r in repeats} >= {0, 1}:
        lines += seeds_table(everything, repeats)  # all seeds from one --seed-runs invocation
    else:
        lines += seeds_table(everything + (repeats or []))
    if "## Equivalence" in old:
        lines += ["## Equivalence" + old.split("## Equivalence", 1)[1]]
    summary.write_text("\n".join(lines))


_ORDER = {
    f"{task}-{part}": 2 * i + j
    for i, task in enumerate(TASKS)
    for j, part in enumerate(("partial", "full"))
}


def seed_runs(out: Path, settings: Settings, seeds: int) -> list[RunResult]:
    """Run `SEEDED_ARMS` at their best (from the CSV) on digits-a0.1 for seeds 0..seeds-1,
    all in one simulation (the seed table then comes from one invocation)."""
    task = TASKS[SEEDED_TASK]
    best = best_by_arm(read_csv(out / f"{SEEDED_TASK}-partial.csv"))
    plan = [
        dataclasses.replace(_spec(arm, params, task, 0.3, settings), seed=seed)
        for seed in range(seeds)
        for arm in SEEDED_ARMS
        for params in (GRID[arm] if arm in SEEDED_GRID else [best[arm].spec.param])
    ]
    results: list[RunResult] = []
    warmup = dataclasses.replace(
        _spec("fedavg", {}, task, 1.0, Settings(1, settings.batch, 1)), seed=999
    )
    run_all(plan, n_nodes=30, warmup=warmup, on_result=results.append)
    write_csv(out / f"{SEEDED_TASK}-partial-seeds.csv", results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="equivalence checks only, 3 rounds of digits-a0.1 (CI)"
    )
    parser.add_argument(
        "--pairs-only",
        action="store_true",
        help="only the equivalence pairs and the noise-floor runs (no grid)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the digits-a0.1 repeats")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--replot", action="store_true", help="redraw the PNGs from --out's CSVs")
    parser.add_argument(
        "--seed-runs", action="store_true", help="only (re)run the digits-a0.1 seed repeats"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.tasks = 3, ["digits-a0.1"]
    name = "noniid-quick" if args.quick else "noniid-pairs" if args.pairs_only else "noniid"
    out = args.out or Path(__file__).resolve().parent / "results" / name
    settings = Settings(args.rounds, args.batch, args.steps)
    if args.seed_runs:
        seed_runs(out, settings, args.seeds)
    if args.replot or args.seed_runs:
        replot(out)
        return 0
    plan = Plan(args.tasks, settings, args.quick or args.pairs_only, args.seeds, not args.quick)
    # Its own seed, hence its own run id: no run may inherit the warm-up's client state.
    warmup = dataclasses.replace(
        _spec("fedavg", {}, TASKS[args.tasks[0]], 1.0, Settings(1, args.batch, 1)), seed=999
    )
    start = time.perf_counter()
    run_all(plan, n_nodes=30, warmup=warmup, on_result=plan.record)
    seconds = time.perf_counter() - start
    data = report(plan.results, out, settings, seconds)
    errors = [r.spec.run_id for r in plan.results if r.error]
    same = max((max(p["same_replies"]) for p in data["pairs"]), default=float("nan"))
    trajectory = max((max(p["trajectory"]) for p in data["pairs"]), default=float("nan"))
    print(
        f"\n{len(plan.results)} runs in {seconds:.0f}s; {len(data['pairs'])} equivalence pairs: "
        f"same replies, worst round {same:.2e}; trajectories, worst {trajectory:.2e} "
        f"(tolerance {TOLERANCE:g})"
    )
    faults = verdict(data, quick=args.quick)
    if args.quick and errors:
        faults.append(f"failed runs: {errors}")
    if faults:
        print("FAILED:\n  " + "\n  ".join(faults))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
