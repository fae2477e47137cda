"""The A/B timing scripts run end to end, with this package's past as a third arm.

Timing figures are not checked here (they belong to the scripts' runs, see
the README's Benchmarks); what is checked is that each arm does the work it
claims: the baseline revision (here HEAD, the same code) trains to the same
weights as ours, and every arm gets a row.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("declearn")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_optimizer_modules_reports_every_arm_with_paired_ratios_over_processes() -> None:
    out = _run(
        "optimizer_modules.py",
        *("--repeats", "5", "--processes", "2", "--control", "--baseline", "HEAD"),
        *("--only", "momentum", "scaffold-client"),
    )
    header = next(line for line in out.splitlines() if line.startswith("module"))
    for column in ("ours/declearn", "ours/baseline", "ours/ours", "shift"):
        assert column in header, out
    cell = r"\d+\.\d{3} \[\d+\.\d{3}-\d+\.\d{3}\]"  # median [range] over the 2 processes
    shift = r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}-[+-]\d\.\d{3}\]$"
    for label in ("momentum", "scaffold-client"):
        row = next(line for line in out.splitlines() if line.startswith(label + " "))
        assert len(re.findall(cell, row)) == 3, row
        assert re.search(shift, row), row


def test_step_overhead_baseline_arm_trains_the_same_weights_as_ours_in_each_process() -> None:
    out = _run(
        "step_overhead.py",
        *("--frameworks", "torch", "--rounds", "2", "--steps", "2", "--n-batches", "8"),
        *("--baseline", "HEAD", "--processes", "2", "--breakdown"),
    )
    for arm in ("ours", "baseline"):  # phases of both arms' eager steps, for sgd and adam
        phases = re.findall(rf"eager path, {arm}: grads \S+ms, updates \S+ms, apply \S+ms", out)
        assert len(phases) == 2, out
    per_process = [line for line in out.splitlines() if "shift in each process:" in line]
    assert len(per_process) == 2, out  # sgd, adam
    for line in per_process:
        assert len(re.findall(r"[+-]\d\.\d{3}", line)) == 2, line
    rows = [line for line in out.splitlines() if line.startswith("torch ")]
    assert len(rows) == 2, out  # sgd, adam
    for row in rows:
        gaps = dict(re.findall(r"(ours|baseline) (\d\.?\d*e[+-]\d+)", row))
        assert set(gaps) == {"ours", "baseline"}, row
        assert gaps["ours"] == gaps["baseline"], row  # the same code does the same work
        assert float(gaps["ours"]) < 1e-5, row
