"""Shared pytest configuration.

64-bit jax arrays are enabled for the whole session, so that float64 results
can be compared across backends (jax downcasts them otherwise).
"""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if importlib.util.find_spec("jax") is not None:
    import jax

    jax.config.update("jax_enable_x64", True)
