"""Shared utilities: type registry, device policy, JSON serialization, lazy imports."""

from flwr_declearn.utils._device import DevicePolicy, get_device_policy, set_device_policy
from flwr_declearn.utils._imports import require
from flwr_declearn.utils._json import from_jsonable, json_dumps, json_loads, to_jsonable
from flwr_declearn.utils._registry import (
    access_registered,
    access_registration_info,
    access_types_mapping,
    build_from_spec,
    create_types_registry,
    register_from_attr,
    register_type,
)

__all__ = [
    "DevicePolicy",
    "access_registered",
    "access_registration_info",
    "access_types_mapping",
    "build_from_spec",
    "create_types_registry",
    "from_jsonable",
    "get_device_policy",
    "json_dumps",
    "json_loads",
    "register_from_attr",
    "register_type",
    "require",
    "set_device_policy",
    "to_jsonable",
]
