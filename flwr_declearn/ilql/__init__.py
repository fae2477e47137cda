"""Federated ILQL (Implicit Language Q-Learning, Snell et al. 2023) on flwr_declearn's bricks.

Needs the 'torch' extra; importing this package is free, its members import
torch on first access.

- `GPTConfig`, `ILQLConfig`: hyper-parameters, with agilerl's names and defaults.
- `ILQLNetwork`: causal GPT trunk with policy, V, Q (Q2) heads and target Q heads;
  `soft_update`, `hard_update`, `clone`.
- `Episode`, `ILQLBatch`, `collate`: offline token episodes and their batches.
- `ilql_loss`, `ILQLLoss`: the expectile V, TD Q, CQL, DM and AWR token terms.
- `decode`: greedy or sampled decoding of `pi + beta * (Q - V)`, with or without KV cache.
- `ILQLModel`: a `TorchModel` training the network with any flwr_declearn Optimizer.
- `save_checkpoint`, `load_checkpoint`: npz checkpoints (no pickle) of a whole run.
- `CodeTask`: the synthetic "safe vs gamble codes" offline task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr_declearn.ilql._batch import Episode, ILQLBatch, collate
    from flwr_declearn.ilql._checkpoint import load_checkpoint, save_checkpoint
    from flwr_declearn.ilql._config import GPTConfig, ILQLConfig
    from flwr_declearn.ilql._decode import decode
    from flwr_declearn.ilql._gpt import GPT, KVCache
    from flwr_declearn.ilql._loss import ILQLLoss, ilql_loss
    from flwr_declearn.ilql._model import ILQLModel
    from flwr_declearn.ilql._network import ILQLNetwork
    from flwr_declearn.ilql._task import CodeTask

_MEMBERS = {
    "GPTConfig": "_config",
    "ILQLConfig": "_config",
    "GPT": "_gpt",
    "KVCache": "_gpt",
    "Episode": "_batch",
    "ILQLBatch": "_batch",
    "collate": "_batch",
    "ILQLNetwork": "_network",
    "ILQLLoss": "_loss",
    "ilql_loss": "_loss",
    "decode": "_decode",
    "ILQLModel": "_model",
    "save_checkpoint": "_checkpoint",
    "load_checkpoint": "_checkpoint",
    "CodeTask": "_task",
}

__all__ = [
    "GPT",
    "CodeTask",
    "Episode",
    "GPTConfig",
    "ILQLBatch",
    "ILQLConfig",
    "ILQLLoss",
    "ILQLModel",
    "ILQLNetwork",
    "KVCache",
    "collate",
    "decode",
    "ilql_loss",
    "load_checkpoint",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    module = _MEMBERS.get(name)
    if module is None:
        raise AttributeError(f"module 'flwr_declearn.ilql' has no attribute {name!r}")
    if module != "_config":
        from flwr_declearn.utils import require

        require("torch", "torch")
    return getattr(importlib.import_module(f"flwr_declearn.ilql.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_MEMBERS])
