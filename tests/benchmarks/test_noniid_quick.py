"""CI check of `benchmarks/noniid.py --quick` on Flower's real Ray simulation engine.

The quick mode runs four pairs (ours vs Flower's built-in Message API
strategy) for 3 rounds on digits with a Dirichlet(0.1) split over 30
clients, 30% of them per round: FedAvg, FedProx, FedAdam (mapped adam) and
FedAvgM (server momentum). It exits non-zero when a pair's global weights
differ by more than 1e-6 in any round; this test also reads its outputs.
"""

from __future__ import annotations

import csv
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


def _equivalence_rows(summary: str) -> dict[tuple[str, str], list[float]]:
    section = summary.split("## Equivalence", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1] not in ("ours", "---"):
            rows[(cells[1], cells[2])] = [float(x) for x in cells[4].split(",")]
    return rows


def test_quick_mode_passes_its_equivalence_checks(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ours_matches_flower_builtins_round_for_round(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    rows = _equivalence_rows((out / "summary.md").read_text())
    assert set(rows) == PAIRS
    for pair, diffs in rows.items():
        assert len(diffs) == 3, (pair, diffs)  # rounds 1..3
        assert max(diffs) <= 1e-6, (pair, diffs)


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
    assert len(runs) == 2 * len(PAIRS)
    assert all(sorted(r) == [0, 1, 2, 3] for r in runs.values()), runs
    initial = {float(row["test_accuracy"]) for row in rows if row["round"] == "0"}
    assert len(initial) == 1  # every arm starts from the same model
