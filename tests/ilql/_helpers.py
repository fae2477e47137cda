"""Shared settings of the ILQL tests: the tiny trunk, the task, a centralised trainer."""

from __future__ import annotations

from typing import Any

import torch

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.ilql import CodeTask, ILQLConfig, ILQLModel
from flwr_declearn.optimizer import Optimizer

TASK = CodeTask(n_contexts=10)
CONFIG = ILQLConfig(tau=0.8, alpha=0.1)
ADAM: dict[str, Any] = {"lrate": 2e-3, "modules": ["adam"]}
DECODE_BETA = 16.0
BATCH = 64
STEPS = 800
N_EPISODES = 1000


def train(
    dataset: InMemoryDataset,
    steps: int,
    seed: int,
    config: ILQLConfig = CONFIG,
    optimizer: dict[str, Any] | None = None,
) -> ILQLModel:
    """Train a fresh tiny ILQL model for `steps` steps of `optimizer` (Adam by default)."""
    torch.manual_seed(seed)
    model = ILQLModel(TASK.net_config(), config, seed=seed)
    optim = Optimizer.from_config(optimizer or ADAM)
    n_steps = 0
    while n_steps < steps:
        for batch in dataset.generate_batches(BATCH, shuffle=True, drop_remainder=True):
            optim.run_train_step(model, batch)
            n_steps += 1
            if n_steps >= steps:
                break
    return model
