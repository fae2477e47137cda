"""Every registered type round-trips through its JSON `(name, config)` spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

import flwr_declearn.flower.aggregators
import flwr_declearn.metrics
import flwr_declearn.optimizer  # noqa: F401  (registers the optimizer plug-ins)
from flwr_declearn.utils import access_registration_info, access_types_mapping, build_from_spec
from flwr_declearn.utils._registry import _REGISTRIES

# Constructor arguments for the types that have required ones.
EXAMPLE_CONFIGS: dict[tuple[str, str], dict[str, Any]] = {
    ("Scheduler", "exponential-decay"): {"base": 0.1, "rate": 0.9},
    ("Scheduler", "inverse-scaling"): {"base": 0.1, "rate": 0.5},
    ("Scheduler", "linear-decay"): {"base": 0.1, "rate": 0.01},
    ("Scheduler", "piecewise-decay"): {"base": 0.1, "rate": 0.5, "step_size": 10},
    ("Scheduler", "polynomial-decay"): {"base": 0.1, "power": 2.0, "limit": 100},
    ("Scheduler", "cosine-annealing"): {"base": 0.001, "max_lr": 0.1, "duration": 50},
    ("Scheduler", "cosine-annealing-warm-restarts"): {"base": 0.001, "max_lr": 0.1, "period": 20},
    ("Scheduler", "cyclic-triangular"): {"base": 0.001, "max_lr": 0.1, "stepsize": 10},
    ("Scheduler", "cyclic-exp-range"): {
        "base": 0.001,
        "max_lr": 0.1,
        "stepsize": 10,
        "decay": 0.99,
    },
    ("Scheduler", "warmup"): {
        "base": ["exponential-decay", {"base": 0.1, "rate": 0.9}],
        "warmup": 5,
    },
    ("Scheduler", "warmup-rounds"): {"base": 0.1, "warmup": 3},
    ("Aggregator", "clipped-mean"): {"max_norm": 1.0},
    ("OptiModule", "torch-optim"): {"optim_cls": "torch.optim.SGD", "kwargs": {"momentum": 0.9}},
    ("OptiModule", "tensorflow-optim"): {"optim": "adam"},
    ("Metric", "multi-classif"): {"labels": [0, 1, 2]},
    ("Metric", "binary-roc"): {"scale": 0.05, "bound": [0.0, 1.0]},
}
# Types wrapping a framework's own optimizer: built only where that framework is installed.
NEEDS_FRAMEWORK = {
    ("OptiModule", "torch-optim"): "torch",
    ("OptiModule", "tensorflow-optim"): "tensorflow",
}
SPEC_GROUPS = ("OptiModule", "Regularizer", "Scheduler", "Metric", "Aggregator")
# Groups whose round trip is tested elsewhere: Vectors travel as named arrays
# (tests/core/test_vector.py), Models by the contract suite (tests/model/);
# data_info fields are classes, not configured objects (tests/core/test_data.py).
OTHER_GROUPS = {"Vector", "Model", "DataInfoField"}


def all_spec_types() -> list[tuple[str, str]]:
    return [(group, name) for group in SPEC_GROUPS for name in access_types_mapping(group)]


def test_every_registry_group_has_a_round_trip_check() -> None:
    library_groups = {g for g in _REGISTRIES if not g.startswith("Test")}
    assert library_groups <= set(SPEC_GROUPS) | OTHER_GROUPS, library_groups


@pytest.mark.parametrize(("group", "name"), all_spec_types(), ids=lambda x: str(x))
def test_registered_type_round_trips_through_its_json_spec(group: str, name: str) -> None:
    framework = NEEDS_FRAMEWORK.get((group, name))
    if framework is not None:
        pytest.importorskip(framework)
    config = EXAMPLE_CONFIGS.get((group, name), {})
    first = build_from_spec((name, config), group)
    assert access_registration_info(type(first)) == (name, group)
    spec = json.loads(json.dumps([name, first.get_config()]))
    second = build_from_spec(spec, group)
    assert type(second) is type(first)
    assert second.get_config() == first.get_config()
