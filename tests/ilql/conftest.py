"""ILQL tests run torch on one thread: the tiny networks gain nothing from more, and a
second thread spinning on a loaded 2-core machine slows steps down twentyfold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
