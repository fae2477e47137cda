"""Message API records: helpers shared by the ClientApp and the message-based strategy.

The record keys are defined in `protocol` (re-exported here).

Train request (server -> client): `RecordDict({"arrays": ArrayRecord, "config": ConfigRecord})`
where the ArrayRecord maps weight names to arrays and the ConfigRecord holds
the `wire.KEY_*` entries (round index, config id, and the bytes payloads:
client configs on a client's first round, its aux-vars) next to any user config.

Train reply: `RecordDict({"arrays": ArrayRecord, "metrics": MetricRecord,
"declearn": ConfigRecord})`: new named weights; "num-examples" and training
metrics; the wire-encoded aux-vars under `wire.KEY_AUX_VAR` (only when the
client Optimizer emitted any).

Evaluate request: as for training; reply: `RecordDict({"metrics": MetricRecord})`
with "num-examples", "loss" and the other metrics.

The layout matches Flower's own message strategies ("arrays", "config",
"metrics", "num-examples"), so the ClientApp also answers Flower's FedAvg.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from flwr_declearn.flower.protocol import (
    ARRAYS_KEY,
    CONFIG_KEY,
    DECLEARN_KEY,
    METRICS_KEY,
    NUM_EXAMPLES_KEY,
)

__all__ = [
    "ARRAYS_KEY",
    "CONFIG_KEY",
    "DECLEARN_KEY",
    "METRICS_KEY",
    "NUM_EXAMPLES_KEY",
    "arrays_to_record",
    "config_of",
    "get_record",
    "record_to_arrays",
]


T = TypeVar("T")


def arrays_to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """Wrap named numpy arrays in an ArrayRecord (keys are the weight names)."""
    return ArrayRecord({name: Array(np.asarray(value)) for name, value in arrays.items()})


def record_to_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """Return the named numpy arrays of an ArrayRecord.

    Raises
    ------
    ValueError
        If an entry is not a numpy-serialized array.
    """
    out: dict[str, np.ndarray] = {}
    for name, array in record.items():
        try:
            out[name] = array.numpy()
        except (TypeError, ValueError, OSError) as exc:
            raise ValueError(
                f"ArrayRecord entry '{name}' is not a valid numpy array: {exc}"
            ) from exc
    return out


def get_record(content: RecordDict, key: str, kind: type[T]) -> T:
    """Return `content[key]`, checking that it exists and has the expected record type.

    Raises
    ------
    ValueError
        If the record is missing or of another type.
    """
    if key not in content:
        raise ValueError(f"The message holds no '{key}' record (found: {sorted(content)}).")
    record = content[key]
    if not isinstance(record, kind):
        raise ValueError(f"Record '{key}' must be a {kind.__name__}, not {type(record).__name__}.")
    return record


def config_of(content: RecordDict) -> ConfigRecord:
    """Return the request's ConfigRecord, or an empty one if it has none."""
    record = content.get(CONFIG_KEY)
    return record if isinstance(record, ConfigRecord) else ConfigRecord()
