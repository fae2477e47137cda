"""README.md's "Port your Flower app" diffs, applied to the template app they start from."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).resolve().parent / "flower_template"
FENCE = re.compile(r"^```diff\n(.*?)^```", re.MULTILINE | re.DOTALL)


def port_diffs() -> list[str]:
    """README.md's diff blocks, in order: the server-only edit, then the client-side two."""
    diffs = FENCE.findall((REPO / "README.md").read_text())
    assert len(diffs) == 3, "README.md should hold the server-only diff and the client-side two"
    return diffs


def server_only_port() -> list[str]:
    """The diffs of the server-only port (the template's clients unchanged)."""
    return port_diffs()[:1]


def client_side_port() -> list[str]:
    """The diffs of the client-side port (applied on top of the server-only one)."""
    return port_diffs()


def apply_port(target: Path, diffs: list[str]) -> Path:
    """Copy the template app to `target` and apply `diffs` to it, in order, with `git apply`."""
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for i, diff in enumerate(diffs):
        patch = target.parent / f"port-{i}.diff"
        patch.write_text(diff)
        subprocess.run(
            ["git", "apply", "--whitespace=nowarn", str(patch)],
            cwd=target,
            check=True,
            capture_output=True,
        )
    return target


def changed_lines(diffs: list[str]) -> tuple[int, int]:
    """(lines added, lines deleted) of unified diffs."""
    lines = [line for diff in diffs for line in diff.splitlines()]
    added = sum(line.startswith("+") and not line.startswith("+++") for line in lines)
    deleted = sum(line.startswith("-") and not line.startswith("---") for line in lines)
    return added, deleted
