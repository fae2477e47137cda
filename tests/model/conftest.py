"""Fixtures running the Model contract tests over every framework-specific Model.

A new Model class joins the contract suite by adding its case to `CASES`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import pytest

from .cases import ModelCase, haiku_case, tensorflow_case, torch_case

CASES: dict[str, tuple[tuple[str, ...], Callable[[], ModelCase]]] = {
    "torch": (("torch",), torch_case),
    "haiku": (("jax", "haiku", "optax"), haiku_case),
    "tensorflow": (("tensorflow", "keras"), tensorflow_case),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request: pytest.FixtureRequest) -> ModelCase:
    """The ModelCase of each framework whose packages are installed."""
    modules, factory = CASES[request.param]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"'{module}' is not installed")
    return factory()
