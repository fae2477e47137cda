"""The task and the model: safe vs gamble codes, a tiny ILQL GPT, per-client offline data."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch

from flwr_declearn.data import InMemoryDataset
from flwr_declearn.ilql import CodeTask, ILQLConfig, ILQLModel

# A tiny model trains fastest on one thread; several clients share the cores.
torch.set_num_threads(1)


def task_from(run_config: Mapping[str, Any]) -> CodeTask:
    return CodeTask(n_contexts=int(run_config["n-contexts"]), seed=int(run_config["seed"]))


def build_model(run_config: Mapping[str, Any]) -> ILQLModel:
    """The tiny ILQL agent (2 layers, 64 dims), seeded: every node starts from the same weights."""
    task = task_from(run_config)
    config = ILQLConfig(tau=float(run_config["tau"]), alpha=float(run_config["alpha"]))
    return ILQLModel(task.net_config(), config, seed=int(run_config["seed"]))


@functools.cache
def _client_dataset(
    partition_id: int, num_partitions: int, n_contexts: int, n_episodes: int, seed: int
) -> InMemoryDataset:
    task = CodeTask(n_contexts=n_contexts, seed=seed)
    episodes = task.client_episodes(partition_id, num_partitions, n_episodes, seed=seed)
    return task.dataset(episodes, seed=seed * 1000 + partition_id)


def load_partition(
    partition_id: int, num_partitions: int, run_config: Mapping[str, Any]
) -> InMemoryDataset:
    """Client `partition_id`'s offline episodes: its own contexts and behaviour mix."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is not in [0, {num_partitions}).")
    data = _client_dataset(
        partition_id,
        num_partitions,
        int(run_config["n-contexts"]),
        int(run_config["episodes-per-client"]),
        int(run_config["seed"]),
    )
    # A fresh generator per call: the client is rebuilt for every round.
    return InMemoryDataset(data.data, seed=data.seed)


def optimizers(run_config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client, server) Optimizer configs of the run's algorithm.

    Clients run SGD with momentum: its steps add up across clients the way a
    centralised run's do, whereas Adam's normalised steps on parameters that
    only one client trains (its contexts' embeddings) shrink by the number of
    clients when averaged.
    """
    lrate = float(run_config["client-lrate"])
    algorithm = str(run_config["algorithm"])
    momentum = ["momentum", {"beta": 0.9}]
    if algorithm == "fedavg":
        return {"lrate": lrate, "modules": [momentum]}, {"lrate": 1.0}
    if algorithm == "scaffold":
        return (
            {"lrate": lrate, "modules": [["scaffold-client", {}], momentum]},
            {"lrate": 1.0, "modules": ["scaffold-server"]},
        )
    raise ValueError(f"algorithm must be 'fedavg' or 'scaffold', not {algorithm!r}.")
