"""Optimizer tests: import the declearn oracle once, silencing its dependencies' deprecations."""

from __future__ import annotations

import importlib.util
import warnings

if importlib.util.find_spec("declearn") is not None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import declearn.model.sklearn
        import declearn.optimizer  # noqa: F401
