"""Each example's command, as its README gives it, runs with short settings and writes its results.

The command is read from the example's README (its first `flwr run examples/...` line);
the test adds overrides: fewer rounds, a result file in a temporary directory, and
one CPU per simulated client. Every run must exit 0, log its per-round progress and its
summary, and write the results JSON (one entry per round, round 0 included) and the
learning-curve PNG.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests._flwr_procs import REPO, flwr_run_local

EXAMPLES = REPO / "examples"


def readme_command(example: str) -> list[str]:
    """The example's `flwr run` command from its README, as arguments after `flwr run`."""
    text = (EXAMPLES / example / "README.md").read_text()
    match = re.search(rf"^flwr run examples/{re.escape(example)}(?=\s|$).*$", text, re.MULTILINE)
    assert match, f"examples/{example}/README.md gives no `flwr run examples/{example}` command"
    args = shlex.split(match.group(0))[2:]
    args[0] = str(REPO / args[0])
    return args


# example: (short rounds, extra run-config overrides, accuracy the last round must reach,
#           module that must be importable, results the JSON must hold[, federation overrides])
CASES: dict[str, tuple[Any, ...]] = {
    "quickstart": (3, "", 0.5, "torch", {}),
    "quickstart-legacy": (3, "", 0.5, "torch", {}),
    "keras": (3, "", 0.5, "tensorflow", {}),
    "jax": (3, "", 0.5, "flwr_declearn.model.jax", {}),
    # One client per framework (the README runs two).
    "mixed-frameworks": (3, "", 0.5, "canonical torch", {}, "num-supernodes=4"),
    "haiku-finetune": (3, "pretrain-epochs=3", 0.55, "haiku", {"frozen_weights_unchanged": True}),
    # Epsilon by round, checked against dp-accounting below.
    "dp-sgd": (3, "noise-multiplier=1.2", 0.3, "dp_accounting", {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(CASES))
def test_example_command_runs_and_writes_its_json_and_png(example: str, tmp_path: Path) -> None:
    rounds, overrides, min_accuracy, needs, expected, *federation = CASES[example]
    if needs == "canonical torch":
        _require_canonical_torch()
    else:
        pytest.importorskip(needs)
    pytest.importorskip("flwr_datasets")
    pytest.importorskip("matplotlib")
    result_file = tmp_path / "out" / f"{example}.json"
    run_config = f'num-server-rounds={rounds} result-file="{result_file}" {overrides}'
    # Two simulated clients at a time on CI's 2 cores (the default reserves 2 CPUs per client).
    speed = ["--federation-config", " ".join(["client-resources-num-cpus=1", *federation])]
    run = flwr_run_local([*readme_command(example), *speed, "--run-config", run_config], tmp_path)
    print(f"\n{example}: flwr run {run.wall_s:.1f}s")
    log = run.succeeded()
    for rnd in range(rounds + 1):
        assert f"round {rnd}: test accuracy" in log, log[-6000:]
    assert f"Summary of {example}: {rounds} rounds" in log, log[-6000:]
    # Every client's update was used, and TensorFlow compiled its graphs once.
    for fault in ("skipping node", "failed:", "retracing"):
        assert fault not in log, log[-6000:]
    results = json.loads(result_file.read_text())
    assert [entry["round"] for entry in results["rounds"]] == list(range(rounds + 1))
    accuracies = [entry["accuracy"] for entry in results["rounds"]]
    print(f"{example}: accuracy by round {[round(acc, 3) for acc in accuracies]}")
    assert results["final_accuracy"] == accuracies[-1] >= min_accuracy, accuracies
    assert accuracies[-1] > accuracies[0], accuracies
    assert {key: results.get(key) for key in expected} == expected
    png = result_file.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if example == "dp-sgd":
        _check_epsilon(results["rounds"], log)


def _check_epsilon(rounds: list[dict[str, Any]], log: str) -> None:
    """Each round's epsilon (worst client) is dp-accounting's for the steps taken so far."""
    import dp_accounting

    spent = [row for row in rounds if "epsilon" in row]
    assert [row["round"] for row in spent] == [row["round"] for row in rounds[1:]], rounds
    # 2 IID clients of the 1437 training digits: 718 or 719 samples, batch 32, one epoch of
    # n // 32 + 1 Poisson draws per round, noise multiplier 1.2.
    for row in spent:
        assert f"round {row['round']}: DP-SGD (epsilon, delta) = ({row['epsilon']:.3f}" in log
        candidates = []
        for n_samples in (718, 719):
            accountant = dp_accounting.rdp.RdpAccountant()
            event = dp_accounting.PoissonSampledDpEvent(
                32 / n_samples, dp_accounting.GaussianDpEvent(1.2)
            )
            accountant.compose(event, row["round"] * (n_samples // 32 + 1))
            candidates.append(accountant.get_epsilon(1e-5))
        assert row["epsilon"] == pytest.approx(max(candidates), rel=1e-9)
        assert row["delta"] == 1e-5


def _require_canonical_torch() -> None:
    """Skip unless every framework's Model takes `canonical_names` (mixed federations)."""
    for module in ("torch", "tensorflow", "haiku", "flwr_declearn.model.jax"):
        pytest.importorskip(module)
    from flwr_declearn.model.torch import TorchModel

    if "canonical_names" not in inspect.signature(TorchModel).parameters:
        pytest.skip("TorchModel has no canonical_names yet (issue 12, models part)")


def test_every_example_has_a_readme_command_and_a_ci_case() -> None:
    examples = sorted(
        path.parent.name
        for path in EXAMPLES.glob("*/pyproject.toml")
        if (path.parent / "README.md").exists() and path.parent.name in CASES
    )
    apps = sorted(path.parent.name for path in EXAMPLES.glob("*/pyproject.toml"))
    owned_elsewhere = {"ilql"}  # tests/ilql/test_ilql_example.py runs it
    assert sorted(set(apps) - owned_elsewhere) == examples == sorted(CASES)
    for example in examples:
        assert readme_command(example)
