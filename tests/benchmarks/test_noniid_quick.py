"""CI check of `benchmarks/noniid.py --quick` on Flower's real Ray simulation engine.

The quick mode runs four pairs (ours vs Flower's built-in Message API
strategy) for 3 rounds on digits with a Dirichlet(0.1) split over 30
clients, 30% of them per round: FedAvg, FedProx, FedAdam (mapped adam) and
FedAvgM (server momentum), and two noise-floor references (Flower's FedAvg
with shuffled replies, FedAvg with a float64 sum). It exits non-zero when a
pair's global weights differ by more than 1e-6 in any round, whether Flower's
strategy aggregates the very replies ours did or runs on its own; this test
also reads its outputs (`equivalence.json`, the CSV).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("ray")
pytest.importorskip("flwr_datasets")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAIRS = {
    ("fedavg", "flower-fedavg"),
    ("fedprox", "flower-fedprox"),
    ("adam-as-fedadam", "flower-fedadam"),
    ("momentum", "flower-fedavgm"),
}


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("noniid-quick")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "noniid.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    print(proc.stdout[-3000:])
    return proc, out


def test_quick_mode_passes_its_equivalence_checks(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ours_matches_flower_builtins_round_for_round(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    data = json.loads((out / "equivalence.json").read_text())
    pairs = {(p["ours"], p["flower"]): p for p in data["pairs"]}
    assert set(pairs) == PAIRS
    for pair, row in pairs.items():
        for key in ("same_replies", "trajectory"):
            diffs = row[key]
            assert len(diffs) == 3, (pair, key, diffs)  # rounds 1..3, every one checked
            assert all(d is not None and d <= 1e-6 for d in diffs), (pair, key, diffs)
    # the plain means are also compared with the float64 mean of the same replies
    for pair in (("fedavg", "flower-fedavg"), ("fedprox", "flower-fedprox")):
        assert all(d is not None and d <= 1e-6 for d in pairs[pair]["ours_vs_float64"])


def test_noise_floor_references_run(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    data = json.loads((out / "equivalence.json").read_text())
    compared = {(row["a"], row["b"]) for row in data["noise"]}
    assert compared == {
        ("flower-fedavg-permuted", "flower-fedavg"),
        ("fedavg-float64", "flower-fedavg"),
        ("fedavg", "fedavg-float64"),
    }
    assert all(len(row["trajectory"]) == 3 for row in data["noise"])


def test_learning_curves_are_written_per_round(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    with (out / "digits-a0.1-partial.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    runs: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        runs.setdefault((row["arm"], row["params"]), []).append(int(row["round"]))
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0
    assert len(runs) == 2 * len(PAIRS) + 2  # and the two noise-floor references
    assert all(sorted(r) == [0, 1, 2, 3] for r in runs.values()), runs
    initial = {float(row["test_accuracy"]) for row in rows if row["round"] == "0"}
    assert len(initial) == 1  # every arm starts from the same model
