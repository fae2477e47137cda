"""Optimizer tests: import declearn (the oracle) once, without its dependencies' deprecation noise."""

from __future__ import annotations

import importlib.util
import warnings

if importlib.util.find_spec("declearn") is not None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import declearn.model.sklearn  # noqa: F401
        import declearn.optimizer  # noqa: F401
