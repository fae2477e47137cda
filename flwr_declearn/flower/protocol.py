"""The flwr_declearn protocol: every key used in Flower configs, metrics and records.

Legacy API (Flower `FitIns` / `FitRes` configs and metrics) and Message API
(`flwr.app` records) carry the same entries; flwr_declearn's own entries are
named "declearn.*" and are never shown to user metric-aggregation functions
(see `is_internal_key`).

Message API layout (see `_records`): a train request is
`RecordDict({"arrays": ArrayRecord, "config": ConfigRecord})`, a train reply
`RecordDict({"arrays": ArrayRecord, "metrics": MetricRecord, "declearn": ConfigRecord})`,
an evaluate reply `RecordDict({"metrics": MetricRecord})`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = [
    "ARRAYS_KEY",
    "CONFIG_KEY",
    "DECLEARN_KEY",
    "INTERNAL_PREFIX",
    "KEY_AUX_VAR",
    "KEY_CONFIG_ID",
    "KEY_EVAL_CONFIG",
    "KEY_OPTIMIZER",
    "KEY_ROUND",
    "KEY_TRAIN_CONFIG",
    "LOSS_KEY",
    "METRICS_KEY",
    "METRIC_DP_DELTA",
    "METRIC_DP_EPSILON",
    "NUM_EXAMPLES_KEY",
    "STATE_KEY",
    "is_internal_key",
    "public_entries",
]

V = TypeVar("V")

INTERNAL_PREFIX = "declearn."
"""Prefix of flwr_declearn's own entries in configs, metrics and `context.state`."""

# -- entries of configs and metrics (both APIs) -------------------------------------------------

KEY_OPTIMIZER = "declearn.optimizer"
"""Server -> client: wire-encoded client Optimizer config."""
KEY_TRAIN_CONFIG = "declearn.train"
"""Server -> client: wire-encoded training config (batch size, epochs or steps...)."""
KEY_CONFIG_ID = "declearn.config_id"
"""Server -> client: id (bytes) of the Optimizer and training configs; the configs
themselves are only sent to clients not known to hold them."""
KEY_EVAL_CONFIG = "declearn.evaluate"
"""Server -> client: wire-encoded evaluation config."""
KEY_AUX_VAR = "declearn.aux_var"
"""Both ways: wire-encoded auxiliary variables `{aux_name: dict}`."""
KEY_ROUND = "declearn.round"
"""Server -> client: index of the training round (int)."""
STATE_KEY = "declearn.client"
"""Client: key of its ConfigRecord in `context.state`."""

# -- records of the Message API -----------------------------------------------------------------

ARRAYS_KEY = "arrays"
"""ArrayRecord of named weights (both ways)."""
CONFIG_KEY = "config"
"""ConfigRecord of a request: the `KEY_*` entries next to any user config."""
METRICS_KEY = "metrics"
"""MetricRecord of a reply: `NUM_EXAMPLES_KEY` and the client's metrics."""
DECLEARN_KEY = "declearn"
"""ConfigRecord of a train reply holding `KEY_AUX_VAR`."""
NUM_EXAMPLES_KEY = "num-examples"
"""Metric holding a reply's example count (Flower's own message strategies read it too)."""
LOSS_KEY = "loss"
"""Metric holding an evaluation's loss (evaluate replies; the server-side evaluation record)."""

# -- metrics the server reports (both APIs) -----------------------------------------------------

METRIC_DP_EPSILON = "dp-epsilon"
"""Fit metric: client-level DP epsilon spent so far (with `dp`)."""
METRIC_DP_DELTA = "dp-delta"
"""Fit metric: the delta of `METRIC_DP_EPSILON`."""


def is_internal_key(key: str) -> bool:
    """Return whether `key` names a flwr_declearn entry (hidden from user metrics)."""
    return key.startswith(INTERNAL_PREFIX)


def public_entries(entries: Mapping[str, V]) -> dict[str, V]:
    """Return `entries` without flwr_declearn's own (those user metric functions never see)."""
    return {key: val for key, val in entries.items() if not is_internal_key(key)}
