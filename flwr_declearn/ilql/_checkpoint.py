"""Checkpoints of an ILQL training run in one npz file, without pickle.

A checkpoint holds every weight of the network (trunk, policy, V, Q, Q2 and
the target heads), the model and Optimizer configs, the Optimizer state
(schedulers' counters, modules' states such as Adam moments or SCAFFOLD
control variates), and optionally the RNG states that shape the rest of the
run (torch's CPU generator, for dropout; a dataset's numpy generator, for
shuffling). Restoring all of them lets a resumed run continue bit-identically.
Everything is stored as arrays or JSON text; `np.load(allow_pickle=False)`
reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.ilql._model import ILQLModel
from flwr_declearn.model.torch import TorchVector
from flwr_declearn.optimizer import Optimizer
from flwr_declearn.utils import json_dumps, json_loads

__all__ = ["load_checkpoint", "save_checkpoint"]

_WEIGHT = "weight/"
_FORMAT = "flwr_declearn.ilql/1"


def _text(value: str) -> np.ndarray:
    return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)


def _read_text(array: np.ndarray) -> str:
    return array.astype(np.uint8).tobytes().decode("utf-8")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: ILQLModel,
    optimizer: Optimizer | None = None,
    *,
    dataset: InMemoryDataset | None = None,
    save_torch_rng: bool = True,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to `path` (an .npz file, written atomically); return its path.

    Parameters
    ----------
    path:
        Target file.
    model:
        The ILQL model (all its weights are saved).
    optimizer:
        The Optimizer driving local training (its config and state are saved).
    dataset:
        A dataset whose shuffling generator should resume where it stands.
    save_torch_rng:
        Whether to save torch's CPU RNG state (dropout masks).
    metadata:
        JSON-able extra information (e.g. the step count).
    """
    arrays: dict[str, np.ndarray] = {"format": _text(_FORMAT)}
    for name, value in model.get_weights().coefs.items():
        arrays[_WEIGHT + name] = value.detach().cpu().numpy()
    arrays["model_config"] = _text(json.dumps(model.get_config()))
    if optimizer is not None:
        arrays["optimizer_config"] = _text(json.dumps(optimizer.get_config()))
        arrays["optimizer_state"] = _text(json_dumps(optimizer.get_state()))
    if dataset is not None:
        arrays["dataset_rng"] = _text(json.dumps(dataset._rng.bit_generator.state))
    if save_torch_rng:
        arrays["torch_rng"] = torch.get_rng_state().numpy()
    arrays["metadata"] = _text(json.dumps(metadata or {}))
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp.npz")
    with open(tmp, "wb") as file:
        np.savez(file, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, target)
    return target


def load_checkpoint(
    path: str | os.PathLike[str],
    model: ILQLModel,
    optimizer: Optimizer | None = None,
    *,
    dataset: InMemoryDataset | None = None,
    restore_torch_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint into existing objects; return its metadata.

    The model's weights are copied in place (parameter objects are kept, so
    anything bound to them stays valid). Everything is checked before
    anything changes.

    Raises
    ------
    ValueError
        If the file is not an ILQL checkpoint, its model config differs from
        `model`'s, or it lacks a part that was asked for.
    KeyError
        If weight names differ from the model's, or the Optimizer's modules differ.
    """
    with np.load(path, allow_pickle=False) as data:
        contents = {key: data[key] for key in data.files}
    if "format" not in contents or _read_text(contents["format"]) != _FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a flwr_declearn ILQL checkpoint.")
    saved_config = json.loads(_read_text(contents["model_config"]))
    if saved_config != model.get_config():
        raise ValueError(
            f"{os.fspath(path)!r} holds a model with another config: {saved_config} "
            f"instead of {model.get_config()}."
        )
    weights = TorchVector(
        {
            key[len(_WEIGHT) :]: torch.from_numpy(np.array(value))
            for key, value in contents.items()
            if key.startswith(_WEIGHT)
        }
    )
    state = None
    if optimizer is not None:
        if "optimizer_state" not in contents:
            raise ValueError(f"{os.fspath(path)!r} holds no Optimizer state.")
        saved_optim = json.loads(_read_text(contents["optimizer_config"]))
        if saved_optim != json.loads(json.dumps(optimizer.get_config())):
            raise ValueError(
                f"{os.fspath(path)!r} holds the state of another Optimizer config: {saved_optim}."
            )
        state = json_loads(_read_text(contents["optimizer_state"]))
    rng_state = None
    if dataset is not None:
        if "dataset_rng" not in contents:
            raise ValueError(f"{os.fspath(path)!r} holds no dataset RNG state.")
        rng_state = json.loads(_read_text(contents["dataset_rng"]))
    if restore_torch_rng and "torch_rng" not in contents:
        raise ValueError(f"{os.fspath(path)!r} holds no torch RNG state.")
    previous = model.get_weights()
    model.set_weights(weights)  # checks names and shapes first
    if optimizer is not None:
        try:
            optimizer.set_state(state)  # type: ignore[arg-type]
        except Exception:
            model.set_weights(previous)
            raise
    if dataset is not None:
        dataset._rng.bit_generator.state = rng_state  # type: ignore[assignment]
    if restore_torch_rng:
        torch.set_rng_state(torch.from_numpy(np.array(contents["torch_rng"])))
    return json.loads(_read_text(contents["metadata"]))  # type: ignore[no-any-return]
