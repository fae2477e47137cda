"""This package at another git revision, importable beside the current one (A/B benchmarks).

`extract(rev)` writes `flwr_declearn` as of `rev` into a temporary folder as
package `BASELINE` (its own imports renamed), so that one process can time
the current code and its past on the same calls. Put the returned folder on
`sys.path` (`use(folder)`) in every process that imports it.
"""

from __future__ import annotations

import atexit
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BASELINE = "flwr_declearn_baseline"
"""The package name of the extracted revision."""


def extract(rev: str) -> str:
    """Extract `flwr_declearn` at git `rev` as package `BASELINE`; return the folder holding it.

    The folder is removed when this process exits.
    """
    root = Path(__file__).resolve().parents[1]
    tar = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "flwr_declearn"], capture_output=True, check=True
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="baseline-"))
    atexit.register(shutil.rmtree, tmp, True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(tmp, filter="data")
    pkg = (tmp / "flwr_declearn").rename(tmp / BASELINE)
    for path in pkg.rglob("*.py"):
        path.write_text(path.read_text().replace("flwr_declearn", BASELINE))
    return str(tmp)


def use(folder: str) -> str:
    """Make the package extracted into `folder` importable; return its name."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return BASELINE
