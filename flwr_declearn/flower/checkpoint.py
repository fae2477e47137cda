"""Server checkpoint files: wire-encoded, hashed, written atomically and durably.

File layout: `MAGIC` (8 bytes), the SHA-256 of the payload (32 bytes), then
the payload, a `wire.encode`d dict (no pickle):

    {"format": FORMAT, "version": VERSION, "server_round": int,
     "weights": Vector, "trainable": [names],
     "server_optimizer": {"config": dict, "state": dict},
     "client_optimizer": dict, "train_config": dict, "eval_config": dict,
     "extra": dict}

Any file that cannot be read, is truncated, altered (hash mismatch) or not a
checkpoint raises `CheckpointError`, as do values that do not fit the
strategy (`check_content`: round, specs, finiteness, Optimizer state).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from logging import WARNING
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from flwr.common import log

from flwr_declearn.flower import wire
from flwr_declearn.flower._client_checks import find_non_finite
from flwr_declearn.flower._global_model import GlobalWeights
from flwr_declearn.model.api import Vector
from flwr_declearn.model.numpy import NumpyVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.privacy import PrivacyAccountant

if TYPE_CHECKING:
    from flwr_declearn.flower.server_dp import ServerDP

__all__ = [
    "FORMAT",
    "MAGIC",
    "VERSION",
    "CheckpointError",
    "LoadedState",
    "check_content",
    "read_checkpoint",
    "thaw",
    "write_checkpoint",
]

MAGIC = b"FLDCKPT\x00"
FORMAT = "flwr_declearn.server_checkpoint"
VERSION = 2
_HEADER = len(MAGIC) + hashlib.sha256().digest_size


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, truncated, tampered with, or does not fit the strategy."""


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def write_checkpoint(path: str | os.PathLike[str], content: dict[str, Any], keep: int = 1) -> Path:
    """Write `content` to `path` atomically (temp file, fsync, rename, directory fsync).

    Stale temp files of `path` (left by a crash) are removed first. With
    `keep > 1`, the previous checkpoints are kept as `path.1` (newest) up
    to `path.{keep - 1}`.

    Returns
    -------
    The path written.

    Raises
    ------
    OSError, TypeError, ValueError
        If the content cannot be encoded or the file cannot be written.
    """
    path = Path(path)
    payload = wire.encode({"format": FORMAT, "version": VERSION, **content})
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(_temp_prefix(path) + "*"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f"{_temp_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as file:
            file.write(MAGIC + hashlib.sha256(payload).digest())
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        if keep > 1 and path.exists():
            for idx in range(keep - 1, 0, -1):
                older = path.with_name(f"{path.name}.{idx - 1}") if idx > 1 else path
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{idx}"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and decode a checkpoint file, checking its hash and format.

    Raises
    ------
    CheckpointError
        If the file cannot be read, is truncated or altered, or is not a
        checkpoint of a supported version.
    """
    where = repr(str(path))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint {where}: {exc}") from exc
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{where} is not a flwr_declearn checkpoint (bad magic bytes).")
    digest, payload = data[len(MAGIC) : _HEADER], data[_HEADER:]
    if len(digest) != hashlib.sha256().digest_size or hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"Checkpoint {where} is truncated or altered (hash mismatch).")
    try:
        content = wire.decode(payload)
    except ValueError as exc:
        raise CheckpointError(f"Checkpoint {where} cannot be decoded: {exc}") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a flwr_declearn checkpoint (format).")
    if content.get("version") != VERSION:
        raise CheckpointError(
            f"{where}: unsupported checkpoint version {content.get('version')!r} "
            f"(this flwr_declearn reads version {VERSION})."
        )
    return content


class LoadedState(NamedTuple):
    """The checked values of a checkpoint, as fresh objects (nothing live shares them)."""

    weights: NumpyVector
    optimizer_state: dict[str, Any]
    server_round: int
    extra: dict[str, Any]


def check_content(
    content: dict[str, Any],
    weights: GlobalWeights,
    optimizer_config: dict[str, Any],
    dp: ServerDP | None = None,
) -> LoadedState:
    """Check a decoded checkpoint against the live global weights and server Optimizer config.

    The round must be a non-negative int, the trainable names and the weight
    specs those of `weights`, every value finite, every Vector of the
    Optimizer state of the trainable weights' specs, and the state must load
    into a fresh Optimizer built from `optimizer_config`.

    Raises
    ------
    CheckpointError
        Naming the first fault found.
    """
    round_index = content.get("server_round")
    if not isinstance(round_index, int) or isinstance(round_index, bool) or round_index < 0:
        raise CheckpointError(f"invalid server_round {round_index!r}")
    trainable = content.get("trainable")
    if not isinstance(trainable, list) or sorted(trainable) != sorted(weights.trainable_names):
        raise CheckpointError(
            f"trainable weights {trainable!r} differ from the model's "
            f"{sorted(weights.trainable_names)}"
        )
    saved = content.get("weights")
    if not isinstance(saved, NumpyVector):
        raise CheckpointError("no weights")
    try:
        weights.get_weights().check_specs(saved)
    except ValueError as exc:
        raise CheckpointError(f"its weights do not match the model: {exc}") from None
    saved = thaw(saved)
    fault = find_non_finite(saved, "weights")
    if fault is not None:
        raise CheckpointError(f"non-finite weights at {fault}")
    optimizer = content.get("server_optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict):
        raise CheckpointError("no server Optimizer state")
    if optimizer.get("config") != optimizer_config:
        log(
            WARNING,
            "flwr_declearn: the checkpoint's server Optimizer config differs from the "
            "current one; restoring its state into the current Optimizer.",
        )
    state = thaw(optimizer["state"])
    trainable_specs = weights.get_weights(trainable=True)
    for vector in _vectors(state):
        try:
            trainable_specs.check_specs(vector)
        except ValueError as exc:
            raise CheckpointError(
                f"a server Optimizer state does not match the trainable weights: {exc}"
            ) from None
    fault = find_non_finite(state, "state")
    if fault is not None:
        raise CheckpointError(f"non-finite server Optimizer state at {fault}")
    Optimizer.from_config(optimizer_config).set_state(state)  # raises on a state that misfits
    extra = content.get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointError("invalid 'extra' state")
    if dp is not None and "privacy" in extra:
        PrivacyAccountant(dp.delta).set_state(extra["privacy"])  # raises if invalid
    return LoadedState(saved, state, round_index, thaw(extra))


def thaw(obj: Any) -> Any:
    """Return a decoded structure with writable copies of its arrays and Vectors."""
    if isinstance(obj, Vector):
        return type(obj)({name: np.array(value) for name, value in obj.pack().items()})
    if isinstance(obj, np.ndarray):
        return np.array(obj)
    if isinstance(obj, dict):
        return {key: thaw(val) for key, val in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(thaw(val) for val in obj)
    return obj


def _vectors(obj: Any) -> Iterator[Vector]:
    if isinstance(obj, Vector):
        yield obj
    elif isinstance(obj, dict):
        for val in obj.values():
            yield from _vectors(val)
    elif isinstance(obj, list | tuple):
        for val in obj:
            yield from _vectors(val)
