"""Checkpoint files: one error type for any bad file, values checked, nothing replaced on error."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flwr_declearn.flower import DeclearnClient, DeclearnMessageStrategy, DeclearnStrategy, wire
from flwr_declearn.flower.checkpoint import (
    MAGIC,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel, LocalClientProxy, make_context, regression_data, run_legacy


def strategy(**kwargs: Any) -> DeclearnStrategy:
    return DeclearnStrategy(
        model=LinearModel(3, dtype="float32"),
        client_optimizer=Optimizer(0.05, modules=["scaffold-client"]),
        server_optimizer=Optimizer(0.3, modules=["scaffold-server", "adam"]),
        train_config={"batch_size": 8, "n_steps": 3},
        min_fit_clients=2,
        min_available_clients=2,
        fraction_evaluate=0.0,
        **kwargs,
    )


def client_fn(context: Any) -> DeclearnClient:
    index = int(context.node_config["partition-id"])
    return DeclearnClient(LinearModel(3, dtype="float32"), regression_data(24, seed=index), context)


def trained(tmp_path: Path, rounds: int = 2, **kwargs: Any) -> tuple[DeclearnStrategy, Path]:
    path = tmp_path / "server.ckpt"
    strat = strategy(checkpoint_path=path, **kwargs)
    proxies = [LocalClientProxy(str(i + 1), client_fn, make_context(i + 1, i)) for i in range(2)]
    run_legacy(strat, proxies, num_rounds=rounds)
    return strat, path


def state_bytes(strat: Any) -> bytes:
    core = strat.core
    return wire.encode([core.get_weights(), core.server_optimizer.get_state(), core.server_round])


def rewrite(path: Path, edit: Any) -> None:
    """Tamper with a checkpoint's values and write it back with a valid hash."""
    content = read_checkpoint(path)
    edit(content)
    del content["format"], content["version"]
    write_checkpoint(path, content)


def test_a_resumed_strategy_holds_the_saved_state_bit_for_bit(tmp_path: Path) -> None:
    saved, path = trained(tmp_path)
    loaded = strategy()
    loaded.load_checkpoint(path)
    assert state_bytes(loaded) == state_bytes(saved)
    message = DeclearnMessageStrategy(
        model=LinearModel(3, dtype="float32"),
        client_optimizer={"lrate": 0.05, "modules": [["scaffold-client", {}]]},
        server_optimizer=Optimizer(0.3, modules=["scaffold-server", "adam"]),
    )
    message.load_checkpoint(path)  # the two strategies share the format
    assert state_bytes(message) == state_bytes(saved)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda data: data[: len(data) // 2], "truncated or altered"),
        (lambda data: data[:10], "truncated or altered"),
        (lambda data: b"", "not a flwr_declearn checkpoint"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "truncated or altered"),
        (lambda data: b"PK\x03\x04" + data[4:], "not a flwr_declearn checkpoint"),
        (lambda data: data + b"\x00", "truncated or altered"),
    ],
)
def test_unreadable_truncated_or_altered_files_raise_checkpoint_error(
    tmp_path: Path, damage: Any, match: str
) -> None:
    _, path = trained(tmp_path, rounds=1)
    path.write_bytes(damage(path.read_bytes()))
    fresh = strategy()
    before = state_bytes(fresh)
    with pytest.raises(CheckpointError, match=match):
        fresh.load_checkpoint(path)
    assert state_bytes(fresh) == before


def test_a_round_changed_by_hand_is_caught_by_the_hash(tmp_path: Path) -> None:
    _, path = trained(tmp_path, rounds=1)
    data = path.read_bytes()
    payload = wire.decode(data[len(MAGIC) + 32 :])
    payload["server_round"] = 1000
    path.write_bytes(data[: len(MAGIC) + 32] + wire.encode(payload))
    with pytest.raises(CheckpointError, match="hash mismatch"):
        strategy().load_checkpoint(path)


def nan_weights(content: dict[str, Any]) -> None:
    coefs = dict(content["weights"].coefs)
    coefs["bias"] = np.full(1, np.nan, "float32")
    content["weights"] = NumpyVector(coefs)


def nan_adam(content: dict[str, Any]) -> None:
    modules = content["server_optimizer"]["state"]["modules"]
    state = modules[1][1]
    key = next(k for k, v in state.items() if isinstance(v, NumpyVector))
    state[key] = NumpyVector({k: np.full_like(v, np.nan) for k, v in state[key].coefs.items()})


def reshaped_scaffold(content: dict[str, Any]) -> None:
    state = content["server_optimizer"]["state"]["modules"][0][1]
    coefs = dict(state["s_state"].coefs)
    coefs["kernel"] = np.asarray(coefs["kernel"]).reshape(1, 3)
    state["s_state"] = NumpyVector(coefs)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (nan_weights, r"non-finite weights at weights\['bias'\]"),
        (nan_adam, "non-finite server Optimizer state"),
        (
            reshaped_scaffold,
            r"does not match the trainable weights.*'kernel': float32\[3, 1\] vs float32\[1, 3\]",
        ),
        (lambda c: c.update(server_round=-1), "invalid server_round -1"),
        (lambda c: c.update(server_round=True), "invalid server_round True"),
        (lambda c: c.update(trainable=["bias"]), "trainable weights"),
        (lambda c: c["server_optimizer"]["state"].update(modules=[]), "Checkpoint"),
        (lambda c: c.update(weights={"bias": 1}), "no weights"),
    ],
)
def test_tampered_values_are_rejected_and_nothing_is_replaced(
    tmp_path: Path, edit: Any, match: str
) -> None:
    saved, path = trained(tmp_path)
    rewrite(path, edit)
    before = state_bytes(saved)
    with pytest.raises(CheckpointError, match=match):
        saved.load_checkpoint(path)
    assert state_bytes(saved) == before


def test_keep_last_n_and_stale_temp_files_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".server.ckpt.tmp-1-deadbeef"
    stale.write_bytes(b"left by a crash")
    trained(tmp_path, rounds=4, keep_checkpoints=3)
    assert not stale.exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server.ckpt", "server.ckpt.1", "server.ckpt.2"]
    rounds = [read_checkpoint(tmp_path / name)["server_round"] for name in names]
    assert rounds == [4, 3, 2]


def test_a_failed_checkpoint_write_is_logged_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="flwr"):
        strat = strategy(checkpoint_path=blocker / "server.ckpt")
        proxies = [
            LocalClientProxy(str(i + 1), client_fn, make_context(i + 1, i)) for i in range(2)
        ]
        run_legacy(strat, proxies, num_rounds=2)
    assert strat.core.server_round == 2
    assert caplog.text.count("cannot write the checkpoint") == 2
    failing = strategy(checkpoint_path=blocker / "server.ckpt", on_checkpoint_error="raise")
    with pytest.raises(OSError):
        run_legacy(failing, proxies, num_rounds=1)
