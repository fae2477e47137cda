"""The learning task: a torch MLP on the digits (`flwr_declearn.data.examples`, IID partitions)."""

from __future__ import annotations

import torch

from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.torch import TorchModel

torch.set_num_threads(1)  # several clients share the cores


def build_model(seed: int = 0, hidden: int = 32) -> TorchModel:
    """Return a 64-hidden-10 MLP (ReLU, no batch-norm: per-sample gradients need none)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, N_CLASSES),
        )
    return TorchModel(module, loss=torch.nn.CrossEntropyLoss(reduction="none"))
