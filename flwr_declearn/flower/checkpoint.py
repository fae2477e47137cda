"""Server checkpoint files: wire-encoded, hashed, written atomically and durably.

File layout: `MAGIC` (8 bytes), the SHA-256 of the payload (32 bytes), then
the payload, a `wire.encode`d dict (no pickle):

    {"format": FORMAT, "version": VERSION, "server_round": int,
     "weights": Vector, "trainable": [names],
     "server_optimizer": {"config": dict, "state": dict},
     "client_optimizer": dict, "train_config": dict, "eval_config": dict,
     "extra": dict}

Any file that cannot be read, is truncated, altered (hash mismatch) or not a
checkpoint raises `CheckpointError`; the values themselves (specs,
finiteness, round) are checked by the loader (`FederatedCore.load_checkpoint`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from flwr_declearn.flower import wire

__all__ = ["FORMAT", "MAGIC", "VERSION", "CheckpointError", "read_checkpoint", "write_checkpoint"]

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
