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
    """The diff blocks of README.md: the server and the client edits."""
    diffs = FENCE.findall((REPO / "README.md").read_text())
    assert len(diffs) == 2, "README.md should hold the server and the client diff"
    return diffs


def apply_port(target: Path) -> Path:
    """Copy the template app to `target` and apply README.md's diffs to it with `git apply`."""
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for i, diff in enumerate(port_diffs()):
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
