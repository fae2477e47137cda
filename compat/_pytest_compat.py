"""pytest plug-in of the declearn test-suite runner: shim check and result log.

Loaded with `-p _pytest_compat` by `run_declearn_tests.py`. It refuses to run
unless `import declearn` resolves to our shim, stubs the test helpers of
declearn features outside the compared areas (network and secure aggregation),
and appends one JSON line per test (node id, outcome, one-line reason) to
the file named by `DECLEARN_COMPAT_LOG`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import sys
import types

import pytest


def _stub_module(name: str) -> types.ModuleType:
    """A module whose public names (those of the real file) are placeholders raising when used."""
    from declearn._shim import missing

    source = importlib.util.find_spec(name.rsplit(".", 1)[0])
    assert source is not None and source.submodule_search_locations
    path = os.path.join(next(iter(source.submodule_search_locations)), name.rsplit(".", 1)[1])
    with open(path + ".py", encoding="utf-8") as file:
        tree = ast.parse(file.read())
    module = types.ModuleType(name)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            setattr(module, node.name, missing(f"{name}.{node.name}"))
    return module


def _install() -> None:
    import declearn

    if not getattr(declearn, "FLWR_DECLEARN_SHIM", False):
        raise pytest.UsageError(f"'declearn' resolves to {declearn.__file__}, not to the shim.")
    # declearn's test helpers import its network and secagg code at top level;
    # no compared area uses them, so they are stubbed rather than imported.
    for name in ("test.testing_utils._network", "test.testing_utils._secagg"):
        sys.modules.setdefault(name, _stub_module(name))


def _see_tensorflow_cpu() -> None:
    """Let declearn's test helpers (they look for "tensorflow") see tensorflow-cpu."""
    original = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        try:
            return original(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "tensorflow":
                return original("tensorflow-cpu")
            raise

    importlib.metadata.distribution = distribution  # type: ignore[assignment]


_install()  # at plug-in import: before the test tree's conftest files load
_see_tensorflow_cpu()


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _write(record: dict[str, str]) -> None:
    path = os.environ.get("DECLEARN_COMPAT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if report.when != "call" and report.outcome == "failed":
            outcome = "error"
        _write({"nodeid": report.nodeid, "outcome": outcome, "reason": _reason(report)})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write({"nodeid": report.nodeid, "outcome": "error", "reason": _reason(report)})
