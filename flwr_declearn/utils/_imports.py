"""Lazy, explicit imports of optional frameworks."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an ImportError that names the extra to install.

    Parameters
    ----------
    module:
        Name of the framework module (e.g. "torch").
    extra:
        Name of the flwr-declearn extra that installs it (e.g. "torch").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"This feature needs '{module}', which is not installed: "
            f"pip install 'flwr-declearn[{extra}]'."
        ) from exc
