"""The learning task: scikit-learn's digits as a Hugging Face dataset, split by flwr-datasets.

Everything is offline: `load_digits` ships with scikit-learn. The 8x8 images become a
`datasets.Dataset` with a "pixels" column (64 floats in [0, 1]) and a "label" column,
split 80/20 (stratified) into train and test sets; a flwr-datasets partitioner (IID or
Dirichlet label skew) shares the training set among the clients. That data loading is
shared by the examples, in `flwr_declearn.data.examples` (installed with flwr_declearn);
this module holds the model.
"""

from __future__ import annotations

import datasets
import torch

from flwr_declearn.data.examples import N_CLASSES, N_FEATURES
from flwr_declearn.model.torch import TorchModel

# A tiny model trains fastest on one thread; several clients share the cores.
torch.set_num_threads(1)
datasets.disable_progress_bars()


def build_model(seed: int = 0, hidden: int = 32) -> TorchModel:
    """Return a 64-hidden-10 MLP (ReLU) with seeded initial weights, with its loss."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = torch.nn.Sequential(
            torch.nn.Linear(N_FEATURES, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, N_CLASSES),
        )
    return TorchModel(module, loss=torch.nn.CrossEntropyLoss(reduction="none"))
