"""README.md's "Port your Flower app": Flower's PyTorch template, ported by its diffs, trains.

`flower_template/` is the app `flwr new` creates for PyTorch (Flower's template files,
see its pyproject.toml), with scikit-learn's digits in place of CIFAR-10 so that it
runs offline. The README's diffs are applied to a copy of it, and each ported app runs
with `flwr run` on the Ray simulation engine: the server-only port (the template's own
clients and training, server Adam) and the client-side port (SCAFFOLD + momentum clients
through `handle_train`, server Adam); both keep the template's `@app.evaluate()` and its final
`torch.save`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests._flwr_procs import flwr_run_local, simulation_args

from ._port import apply_port, changed_lines, client_side_port, server_only_port

ROUNDS = 3
NODES = 4
README = Path(__file__).resolve().parents[2] / "README.md"
TEMPLATE = Path(__file__).parent / "flower_template"


def _readme_counts() -> tuple[tuple[int, int], tuple[int, int]]:
    found = re.search(
        r"server-only port is (\d+) lines written and (\d+) deleted; the client-side port "
        r"adds (\d+) written and (\d+) deleted",
        " ".join(README.read_text().split()),
    )
    assert found, "README.md should state the ports' line counts"
    counts = [int(group) for group in found.groups()]
    return (counts[0], counts[1]), (counts[2], counts[3])


def test_the_server_only_port_is_a_small_diff_and_the_readme_counts_both_ports(
    tmp_path: Path,
) -> None:
    server_only = apply_port(tmp_path / "server-only" / "myapp", server_only_port())
    assert "DeclearnMessageStrategy" in (server_only / "myapp" / "server_app.py").read_text()
    for name in ("client_app.py", "task.py"):  # the template's clients stay as they are
        assert (server_only / "myapp" / name).read_bytes() == (
            TEMPLATE / "myapp" / name
        ).read_bytes()
    client_side = apply_port(tmp_path / "client-side" / "myapp", client_side_port())
    assert "handle_train" in (client_side / "myapp" / "client_app.py").read_text()
    assert (client_side / "myapp" / "task.py").read_bytes() == (
        TEMPLATE / "myapp" / "task.py"
    ).read_bytes()
    server_counts = changed_lines(server_only_port())
    client_counts = changed_lines(client_side_port()[1:])
    assert _readme_counts() == (server_counts, client_counts)
    assert sum(server_counts) <= 25, "the server-only port should stay a small diff"


def _net_class(app_dir: Path) -> type:
    spec = importlib.util.spec_from_file_location("ported_task", app_dir / "myapp" / "task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop("ported_task", None)
    return module.Net  # type: ignore[no-any-return]


def _accuracy(net: object) -> float:
    """Accuracy on all the digits, transformed as the template's task.py does."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor((digits.images / 16.0 - 0.5) / 0.5, dtype=torch.float32)
    with torch.no_grad():
        predicted = net(images.view(-1, 1, 8, 8)).argmax(1).numpy()  # type: ignore[operator]
    return float((predicted == digits.target).mean())


def _run_port(tmp_path: Path, diffs: list[str], lr: float) -> tuple[float, float]:
    """Run the ported template with `flwr run`; return its accuracy before and after."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("flwr_datasets")
    pytest.importorskip("ray")
    ported = apply_port(tmp_path / "myapp", diffs)
    overrides = f"num-server-rounds={ROUNDS} fraction-train=1.0 lr={lr}"
    run = flwr_run_local(simulation_args(ported, f"num-supernodes={NODES}", overrides), tmp_path)
    print(f"\nported template: flwr run {run.wall_s:.1f}s")
    log = run.succeeded()
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
    return initial, final


@pytest.mark.slow
def test_the_server_only_port_trains_the_templates_own_clients_on_the_ray_engine(
    tmp_path: Path,
) -> None:
    initial, final = _run_port(tmp_path, server_only_port(), lr=0.01)  # the template's lr
    # 3 short rounds from an unseeded CNN: 0.5-0.7 in single runs; the test checks it learns.
    assert final > initial + 0.25, (initial, final)


@pytest.mark.slow
def test_the_client_side_port_trains_scaffold_clients_on_the_ray_engine(tmp_path: Path) -> None:
    initial, final = _run_port(tmp_path, client_side_port(), lr=0.1)
    # SCAFFOLD + momentum SGD moves the template's CNN slower than its own Adam in 3 rounds
    # (0.4-0.6 accuracy on all digits in single runs): the test checks that it learns.
    assert final > initial + 0.25, (initial, final)
