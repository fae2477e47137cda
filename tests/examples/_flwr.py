"""Run a Flower app with `flwr run` on its own local simulation SuperLink, then stop it.

`flwr run APP` with the default connection (`address = ":local:"`, written to a
fresh `$FLWR_HOME/config.toml` on first use) starts a detached simulation
SuperLink on the ports named by FLWR_LOCAL_SUPERLINK_HTTP_API_PORT and
FLWR_LOCAL_CONTROL_API_PORT and leaves it running. Each run here uses a
private FLWR_HOME and free ports; afterwards the SuperLink started for it is
found by its port and ended with its process tree, by pid.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN_DIR = Path(sys.executable).parent  # flwr, flower-superlink, ...
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300.0


@dataclasses.dataclass
class FlwrRun:
    """What a `flwr run` printed, how long it took and whether it succeeded."""

    output: str
    wall_s: float
    returncode: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            found.setdefault(ppid, []).append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(roots: list[int], grace: float = 10.0) -> list[int]:
    """SIGTERM `roots` and their descendants, SIGKILL the survivors; return pids still alive."""
    children = _children()
    tree, stack = list(roots), list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in tree:
                tree.append(child)
                stack.append(child)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in tree):
        time.sleep(0.2)
    for pid in tree:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.3)
    return [pid for pid in tree if _alive(pid)]


def find_processes(*needles: str) -> list[int]:
    """Pids whose command line contains every needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(needle in cmdline for needle in needles):
                found.append(int(entry.name))
    return found


def flwr_run(args: list[str], workdir: Path, timeout: float = RUN_TIMEOUT) -> FlwrRun:
    """Run `flwr run ARGS` from `workdir` on a private local SuperLink; stop it afterwards.

    Raises
    ------
    AssertionError
        If processes outlive the cleanup.
    """
    home = workdir / "flwr-home"
    http_port, control_port = free_port(), free_port()
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http_port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control_port),
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN_DIR / "flwr"), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
        start_new_session=True,
    )
    try:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree([proc.pid], grace=1.0)
            output, _ = proc.communicate()
            output += f"\n[test] flwr run timed out after {timeout}s".encode()
    finally:
        superlinks = find_processes("flower-superlink", f"--port {http_port} ")
        survivors = kill_tree(superlinks)
    assert not survivors, f"processes left running after cleanup: {survivors}"
    return FlwrRun(output.decode(errors="replace"), time.monotonic() - start, proc.returncode)
