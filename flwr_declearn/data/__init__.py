"""Data: batches, in-memory datasets, data_info aggregation."""

from flwr_declearn.data._adapters import as_dataset, from_hf_dataset, from_tf_dataset, from_torch
from flwr_declearn.data._data_info import aggregate_data_info
from flwr_declearn.data._dataset import Batch, DataSpecs, InMemoryDataset

__all__ = [
    "Batch",
    "DataSpecs",
    "InMemoryDataset",
    "aggregate_data_info",
    "as_dataset",
    "from_hf_dataset",
    "from_tf_dataset",
    "from_torch",
]

from flwr_declearn.data._partition import (
    PartitionScheme,
    partition_dataset,
    partition_indices,
)

__all__ += ["PartitionScheme", "partition_dataset", "partition_indices"]
