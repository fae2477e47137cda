"""Data: batches, in-memory datasets, data_info aggregation."""

from flwr_declearn.data._adapters import as_dataset, from_hf_dataset, from_tf_dataset, from_torch
from flwr_declearn.data._data_info import (
    ClassesField,
    DataInfoField,
    DataTypeField,
    FeaturesShapeField,
    NbSamplesField,
    aggregate_data_info,
    get_data_info_fields_documentation,
    register_data_info_field,
)
from flwr_declearn.data._dataset import Batch, DataSpecs, InMemoryDataset
from flwr_declearn.data._io import load_data_array, save_data_array

__all__ = [
    "Batch",
    "ClassesField",
    "DataInfoField",
    "DataSpecs",
    "DataTypeField",
    "FeaturesShapeField",
    "InMemoryDataset",
    "NbSamplesField",
    "aggregate_data_info",
    "as_dataset",
    "from_hf_dataset",
    "from_tf_dataset",
    "from_torch",
    "get_data_info_fields_documentation",
    "load_data_array",
    "register_data_info_field",
    "save_data_array",
]

from flwr_declearn.data._partition import (
    PartitionScheme,
    partition_dataset,
    partition_indices,
)

__all__ += ["PartitionScheme", "partition_dataset", "partition_indices"]
