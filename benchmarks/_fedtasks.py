"""Download-free federated tasks for the benchmarks: data splits, models, evaluation.

Two tasks, each split over `n_clients` with a held-out test set, all seeded:

- digits: scikit-learn's 8x8 digits (1797 images), 80/20 stratified
  train/test split, the training set split over the clients by
  flwr-datasets' `DirichletPartitioner` on the label (concentration `alpha`;
  0.1 is very skewed, 1.0 mildly). Model: a 64-32-10 ReLU MLP.
- synthetic: the FedProx paper's Synthetic(alpha, beta) (Li et al., 2020,
  after Shamir et al.), from its published recipe: client k draws
  u_k ~ N(0, alpha^2), B_k ~ N(0, beta^2), a model W_k ~ N(u_k, 1) (60x10),
  b_k ~ N(u_k, 1), feature means v_k ~ N(B_k, 1) (60), and
  n_k = floor(lognormal(4, 2)) + 50 samples x ~ N(v_k, diag(j^-1.2)),
  labelled y = argmax(W_k^T x + b_k); each client keeps 90% for training and
  the pooled 10% form the test set. Model: multinomial logistic regression.
- blobs (scale tests only): 50 samples per client of 60 Gaussian features
  labelled by one shared random linear teacher; logistic regression.

Everything is a pure function of its arguments (cached per process), so
Ray workers rebuild exactly the server's splits.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any

import numpy as np
import torch

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.model.torch import TorchModel

torch.set_num_threads(1)  # tiny models; clients share two cores

__all__ = [
    "Split",
    "TaskSpec",
    "build_model",
    "build_module",
    "evaluate_state",
    "load_split",
]


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A federated task: `kind` ("digits" or "synthetic") and its parameters."""

    kind: str
    n_clients: int = 30
    alpha: float = 0.1  # digits: Dirichlet concentration; synthetic: model heterogeneity
    beta: float = 0.0  # synthetic only: feature heterogeneity
    seed: int = 0

    @property
    def label(self) -> str:
        if self.kind == "digits":
            return f"digits-a{self.alpha:g}"
        return f"synthetic-{self.alpha:g}-{self.beta:g}"

    def to_config(self) -> dict[str, Any]:
        return {
            "task.kind": self.kind,
            "task.n_clients": self.n_clients,
            "task.alpha": float(self.alpha),
            "task.beta": float(self.beta),
            "task.seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: Any) -> TaskSpec:
        return cls(
            str(config["task.kind"]),
            int(config["task.n_clients"]),
            float(config["task.alpha"]),
            float(config["task.beta"]),
            int(config["task.seed"]),
        )


@dataclasses.dataclass(frozen=True)
class Split:
    """Client training shards (inputs, labels) and the held-out test set."""

    clients: tuple[tuple[np.ndarray, np.ndarray], ...]
    test: tuple[np.ndarray, np.ndarray]

    def client_dataset(self, partition: int, seed: int) -> InMemoryDataset:
        inputs, labels = self.clients[partition]
        return InMemoryDataset(inputs, labels, seed=seed)


@functools.cache
def load_split(spec: TaskSpec) -> Split:
    """Return the task's client shards and test set."""
    if spec.kind == "digits":
        return _digits(spec.n_clients, spec.alpha, spec.seed)
    if spec.kind == "synthetic":
        return _synthetic(spec.n_clients, spec.alpha, spec.beta, spec.seed)
    if spec.kind == "blobs":
        return _blobs(spec.n_clients, spec.seed)
    raise ValueError(f"Unknown task kind {spec.kind!r}: expected 'digits', 'synthetic' or 'blobs'.")


def _digits(n_clients: int, alpha: float, seed: int) -> Split:
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    inputs = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        inputs, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    partitioner = DirichletPartitioner(
        num_partitions=n_clients,
        partition_by="label",
        alpha=alpha,
        min_partition_size=3,  # 1437 samples over 30 clients: 10 fails at alpha 0.1
        self_balancing=False,
        seed=seed,
    )
    partitioner.dataset = Dataset.from_dict({"row": np.arange(len(y_train)), "label": y_train})
    shards = []
    with warnings.catch_warnings():  # it warns on each Dirichlet redraw, as designed
        warnings.simplefilter("ignore", UserWarning)
        partitioner.load_partition(0)
    for pid in range(n_clients):
        rows = np.asarray(partitioner.load_partition(pid)["row"], dtype=np.int64)
        shards.append((x_train[rows], y_train[rows]))
    return Split(tuple(shards), (x_test, y_test))


def _synthetic(n_clients: int, alpha: float, beta: float, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    dim, n_classes = 60, 10
    sizes = rng.lognormal(4, 2, n_clients).astype(int) + 50
    mean_w = rng.normal(0, alpha, n_clients)
    mean_x_centre = rng.normal(0, beta, n_clients)
    std_x = np.power(np.arange(1, dim + 1, dtype=np.float64), -1.2) ** 0.5
    shards, test_x, test_y = [], [], []
    for k in range(n_clients):
        mean_x = rng.normal(mean_x_centre[k], 1, dim)
        weight = rng.normal(mean_w[k], 1, (dim, n_classes))
        bias = rng.normal(mean_w[k], 1, n_classes)
        inputs = mean_x + rng.standard_normal((sizes[k], dim)) * std_x
        labels = np.argmax(inputs @ weight + bias, axis=1)
        n_train = int(0.9 * sizes[k])
        shards.append((inputs[:n_train].astype(np.float32), labels[:n_train].astype(np.int64)))
        test_x.append(inputs[n_train:])
        test_y.append(labels[n_train:])
    test = (np.concatenate(test_x).astype(np.float32), np.concatenate(test_y).astype(np.int64))
    return Split(tuple(shards), test)


def _blobs(n_clients: int, seed: int, n_samples: int = 50) -> Split:
    """Scale-test data: 50 samples per client labelled by one shared linear teacher."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(0, 1, (60, 10))
    inputs = rng.normal(0, 1, (n_clients + 1, n_samples, 60)).astype(np.float32)
    labels = np.argmax(inputs @ teacher, axis=-1).astype(np.int64)
    shards = tuple((inputs[k], labels[k]) for k in range(n_clients))
    return Split(shards, (inputs[-1], labels[-1]))


def build_module(kind: str, seed: int = 0) -> torch.nn.Module:
    """The task's torch module with seeded initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "digits":
            return torch.nn.Sequential(
                torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
            )
        if kind in ("synthetic", "blobs"):
            return torch.nn.Sequential(torch.nn.Linear(60, 10))
    raise ValueError(f"Unknown task kind {kind!r}.")


def build_model(kind: str, seed: int = 0) -> TorchModel:
    """`build_module` wrapped as a flwr_declearn TorchModel with cross-entropy loss."""
    return TorchModel(build_module(kind, seed), loss=torch.nn.CrossEntropyLoss(reduction="none"))


def evaluate_state(
    module: torch.nn.Module, state: dict[str, np.ndarray], test: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    """Load `state` (by state_dict name) into `module`; return (test loss, test accuracy)."""
    with torch.no_grad():
        module.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
        logits = module(torch.as_tensor(test[0]))
        target = torch.as_tensor(test[1])
        loss = torch.nn.functional.cross_entropy(logits, target).item()
        correct = int((logits.argmax(dim=1) == target).sum().item())
    accuracy = correct / len(test[1])  # exact in float64 (float32 puts 324/360 below 0.9)
    return float(loss), accuracy
