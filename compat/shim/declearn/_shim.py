"""Re-export flwr_declearn objects under declearn's module names.

`reexport(name, globals(), *sources)` fills a shim module with the public
names of our `sources` modules and returns a module-level `__getattr__`
that resolves any other name on them, or, failing that, on a placeholder
(`missing`) that raises `NotImplementedError` when used, so that a declearn
test using a feature we do not carry fails alone rather than failing the
collection of its whole file.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["missing", "reexport"]


def _log_missing(qualname: str) -> None:
    path = os.environ.get("DECLEARN_SHIM_MISSING_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(qualname + "\n")


class _MissingMeta(type):
    """Metaclass of placeholders: any use raises NotImplementedError."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"'{cls.__qualname__}' is not provided by flwr_declearn.")

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise NotImplementedError(f"'{cls.__qualname__}.{attr}' is not provided by flwr_declearn.")

    def __getitem__(cls, item: Any) -> Any:
        return cls


def missing(qualname: str) -> type:
    """Return a placeholder class standing for declearn's `qualname`."""
    _log_missing(qualname)
    return _MissingMeta(qualname, (), {"__qualname__": qualname, "__module__": "declearn"})


# Lower-case names of declearn's API that its tests import; any other lower-case
# name is an ordinary missing attribute (tools such as torch's inductor probe
# modules for names like `torch` and must get an AttributeError).
_API_FUNCTIONS = frozenset(
    {
        "access_registered",
        "access_registration_info",
        "access_types_mapping",
        "aggregate_data_info",
        "build_keras_loss",
        "create_types_registry",
        "get_data_info_fields_documentation",
        "list_optim_modules",
        "list_optim_regularizers",
        "list_rate_schedulers",
        "register_data_info_field",
        "register_from_attr",
        "register_type",
        "register_vector_type",
        "save_data_array",
        "select_device",
        "set_device_policy",
    }
)


def _public(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return list(names)


def reexport(
    name: str, namespace: dict[str, Any], *sources: str, elsewhere: dict[str, str] | None = None
) -> Callable[[str], Any]:
    """Copy the public names of `sources` into `namespace`; return its `__getattr__`.

    `elsewhere` maps names that live in another of our modules to that module
    (imported on first use).
    """
    modules: list[ModuleType] = []
    for source in sources:
        try:
            modules.append(importlib.import_module(source))
        except ModuleNotFoundError as exc:
            if exc.name is None or not source.startswith(exc.name):
                raise  # a framework is missing: let the ImportError through
    for module in modules:
        for attr in _public(module):
            if hasattr(module, attr):
                namespace.setdefault(attr, getattr(module, attr))

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for module in modules:
            if hasattr(module, attr):
                return getattr(module, attr)
        if elsewhere and attr in elsewhere:
            found = getattr(importlib.import_module(elsewhere[attr]), attr, None)
            if found is not None:
                return found
        if not (attr[:1].isupper() or attr in _API_FUNCTIONS):
            raise AttributeError(f"module '{name}' has no attribute '{attr}'")
        placeholder = missing(f"{name}.{attr}")
        namespace[attr] = placeholder
        return placeholder

    return __getattr__
