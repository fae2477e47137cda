"""Fixtures running the Model contract tests over every framework-specific Model.

A new Model class joins the contract suite by adding its case to `CASES`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

import pytest

from .cases import (
    ModelCase,
    haiku_case,
    jax_case,
    tensorflow_case,
    torch_canonical_case,
    torch_case,
)

CASES: dict[str, tuple[tuple[str, ...], Callable[[], ModelCase]]] = {
    "torch": (("torch",), torch_case),
    "haiku": (("jax", "haiku", "optax"), haiku_case),
    "tensorflow": (("tensorflow", "keras"), tensorflow_case),
    "jax": (("jax", "optax"), jax_case),
    "torch-canonical": (("torch",), torch_canonical_case),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request: pytest.FixtureRequest) -> Iterator[ModelCase]:
    """The ModelCase of each framework whose packages are installed.

    Torch runs single-threaded here: these models are tiny, and intra-op
    threads only contend with each other (and with parallel test runs).
    """
    modules, factory = CASES[request.param]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"'{module}' is not installed")
    if not request.param.startswith("torch"):
        yield factory()
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield factory()
    finally:
        torch.set_num_threads(threads)
