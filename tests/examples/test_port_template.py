"""README.md's "Port your Flower app": Flower's PyTorch template, ported by its two diffs, trains.

`flower_template/` is the app `flwr new` creates with Flower 1.42 for PyTorch (same
layout, run config and Message API calls), with scikit-learn's digits in place of
CIFAR-10 so that it runs offline. The README's diffs are applied to a copy of it, and
the ported app runs with `flwr run` on the Ray simulation engine: SCAFFOLD clients and
server Adam, the template's own `@app.evaluate()` and its final `torch.save`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ._flwr import flwr_run
from ._port import apply_port, changed_lines, port_diffs

ROUNDS = 3
NODES = 4


def test_port_diffs_apply_to_the_template_and_the_readme_counts_their_lines(
    tmp_path: Path,
) -> None:
    ported = apply_port(tmp_path / "myapp")
    assert "DeclearnMessageStrategy" in (ported / "myapp" / "server_app.py").read_text()
    assert "handle_train" in (ported / "myapp" / "client_app.py").read_text()
    assert (ported / "myapp" / "task.py").read_bytes() == (
        Path(__file__).parent / "flower_template" / "myapp" / "task.py"
    ).read_bytes()
    added, deleted = changed_lines(port_diffs())
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{added} lines written and {deleted} deleted" in readme, (added, deleted)
    assert added <= 25, "the port should stay a small diff"


def _net_class(app_dir: Path) -> type:
    spec = importlib.util.spec_from_file_location("ported_task", app_dir / "myapp" / "task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Net  # type: ignore[no-any-return]


def _accuracy(net: object) -> float:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    inputs = torch.tensor((digits.data / 16.0).astype(np.float32))
    with torch.no_grad():
        predicted = net(inputs).argmax(1).numpy()  # type: ignore[operator]
    return float((predicted == digits.target).mean())


@pytest.mark.slow
def test_ported_template_trains_with_flwr_run_on_the_ray_engine(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("flwr_datasets")
    pytest.importorskip("ray")
    import flwr_declearn.data

    if not hasattr(flwr_declearn.data, "as_dataset"):
        pytest.skip("the port passes a datasets.Dataset to DeclearnClient (issue 12, client part)")
    ported = apply_port(tmp_path / "myapp")
    run = flwr_run(
        [
            str(ported),
            "--stream",
            "--federation-config",
            f"num-supernodes={NODES}",
            "--run-config",
            f"num-server-rounds={ROUNDS} fraction-train=1.0 lr=0.1",
        ],
        tmp_path,
    )
    log = run.output
    print(f"\nported template: flwr run {run.wall_s:.1f}s")
    assert run.returncode == 0, log[-6000:]
    for rnd in range(1, ROUNDS + 1):
        assert f"round {rnd}: aggregated {NODES} client update(s)" in log, log[-6000:]
    assert "skipping" not in log and "failed" not in log, log[-6000:]
    # The template's own @app.evaluate() answered every round.
    assert log.count("'eval_acc'") >= ROUNDS, log[-6000:]
    # The template saves result.arrays.to_torch_state_dict(): our names are its keys.
    net_class = _net_class(ported)
    initial = _accuracy(net_class())
    net = net_class()
    net.load_state_dict(torch.load(tmp_path / "final_model.pt"))
    final = _accuracy(net)
    print(f"ported template: accuracy on all digits {initial:.3f} -> {final:.3f}")
    assert final >= 0.5 and final > initial + 0.3, (initial, final)
    sys.modules.pop("ported_task", None)
