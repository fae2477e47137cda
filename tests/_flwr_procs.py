"""Real Flower processes for the tests: `flwr run`, a SuperLink with SuperNodes, their cleanup.

Everything listens on 127.0.0.1 only, on free ports, with a private
FLWR_HOME. Flower 1.41 serves the SuperLink's Fleet, Control and Runtime
APIs over one HTTP port (`--host/--port`); each SuperNode has its own
Runtime API port (`--port`) for the ClientApp processes it launches. The
`flwr` CLI reads its SuperLink connections from `$FLWR_HOME/config.toml`.

With the default connection (`address = ":local:"`, which `flwr` writes to a
fresh `$FLWR_HOME/config.toml` on first use), `flwr run` itself starts a
detached simulation SuperLink on the ports named by
FLWR_LOCAL_SUPERLINK_HTTP_API_PORT / FLWR_LOCAL_CONTROL_API_PORT and leaves it
running: `flwr_run_local` finds it by its port afterwards and ends it.

SuperLink and SuperNodes start their own children (SuperExec, ServerApp,
ClientApp and simulation processes) in new sessions, so cleanup walks the
process tree before terminating it, and kills whatever does not exit in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN_DIR = Path(sys.executable).parent  # flower-superlink, flower-supernode, flwr, ...
REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 300.0
STARTUP_TIMEOUT = 90.0
# The marks of a test module whose tests start Flower processes.
PROCESS_TEST_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="process-group cleanup needs POSIX"),
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- processes, from /proc -----------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    """Map each pid to its children's pids, from /proc (empty where /proc is missing)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return children
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Format: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pids: list[int]) -> list[int]:
    children = _children_map()
    found: list[int] = []
    stack = list(pids)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.append(child)
                stack.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether `pid` runs (zombies, which only wait to be reaped, do not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()


def _signal(pid: int, sig: signal.Signals) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(roots: list[int], grace: float = 10.0) -> list[int]:
    """SIGTERM `roots` and their descendants, SIGKILL what outlives `grace` seconds.

    Returns the pids still running afterwards (none, normally).
    """
    tree = roots + _descendants(roots)
    for pid in tree:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in tree):
        time.sleep(0.2)
    tree += [pid for pid in _descendants(roots) if pid not in tree]
    for pid in tree:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    time.sleep(0.5)
    return [pid for pid in tree if _alive(pid)]


def find_processes(*needles: str) -> list[int]:
    """Pids whose command line contains every needle (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


# -- flwr run ------------------------------------------------------------------------------------


def flwr_env(home: Path) -> dict[str, str]:
    """Environment of the Flower commands: FLWR_HOME `home`, this venv's binaries, this repo."""
    return {
        **os.environ,
        "FLWR_HOME": str(home),
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start_flwr_run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start `flwr run ARGS` in its own session, its output (stderr too) piped."""
    return subprocess.Popen(
        [str(BIN_DIR / "flwr"), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def wait_output(run: subprocess.Popen[bytes], timeout: float) -> tuple[str, bool]:
    """The output of `run` once it exits, and whether it had to be killed after `timeout` s."""
    try:
        output, _ = run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree([run.pid], grace=1.0)
        output, _ = run.communicate()
        output += f"\n[test] flwr run timed out after {timeout}s".encode()
        return output.decode(errors="replace"), True
    return output.decode(errors="replace"), False


@dataclasses.dataclass
class FlwrRun:
    """What a `flwr run` printed, how long it took and how it ended."""

    output: str
    wall_s: float
    returncode: int
    timed_out: bool
    timeout: float

    def succeeded(self) -> str:
        """The output, failing the test unless the run started and exited 0 in time."""
        if self.timed_out:
            pytest.fail(f"`flwr run` timed out after {self.timeout}s:\n{self.output[-5000:]}")
        assert self.returncode == 0, self.output[-5000:]
        assert "Successfully started run" in self.output, self.output[-5000:]
        return self.output


def flwr_run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> FlwrRun:
    """Run `flwr run ARGS` from `cwd`; kill it (and its children) after `timeout` seconds."""
    start = time.monotonic()
    run = start_flwr_run(args, env, cwd)
    output, timed_out = wait_output(run, timeout)
    return FlwrRun(output, time.monotonic() - start, run.returncode, timed_out, timeout)


def simulation_args(app: Path, federation_config: str, run_config: str) -> list[str]:
    """`flwr run` arguments: `app` on the default connection, streamed, with these overrides."""
    return [
        str(app),
        "--stream",
        "--federation-config",
        federation_config,
        "--run-config",
        run_config,
    ]


def flwr_run_local(args: list[str], workdir: Path, timeout: float = RUN_TIMEOUT) -> FlwrRun:
    """Run `flwr run ARGS` from `workdir` on a private local SuperLink; stop it afterwards.

    FLWR_HOME is `workdir / "flwr-home"` (without config.toml, so that `flwr`
    writes its default `:local:` connection), the SuperLink's ports are free ones.

    Raises
    ------
    AssertionError
        If the run started no local SuperLink, or processes outlive the cleanup.
    """
    env = flwr_env(workdir / "flwr-home")
    http_port, control_port = free_port(), free_port()
    env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(http_port)
    env["FLWR_LOCAL_CONTROL_API_PORT"] = str(control_port)
    try:
        run = flwr_run(args, env, workdir, timeout)
    finally:
        # `flwr run` leaves its local SuperLink running, detached: find it by its port.
        superlinks = find_processes("flower-superlink", f"--port {http_port} ")
        survivors = kill_tree(superlinks)
    assert not survivors, f"processes left running after cleanup: {survivors}"
    assert superlinks, f"flwr run did not start a local SuperLink:\n{run.output[-5000:]}"
    return run


# -- a SuperLink with SuperNodes -----------------------------------------------------------------


class Processes:
    """Processes started in their own sessions, logging to files; `stop` ends them all."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [str(BIN_DIR / args[0]), *args[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.log_dir,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {proc.returncode}:\n{self.log(name)[-3000:]}"
                )

    def stop(self) -> list[int]:
        """End every process and its descendants; return the pids still running."""
        survivors = kill_tree([proc.pid for proc in self.procs.values()])
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                survivors.append(proc.pid)
        return survivors


def _wait_for_superlink(procs: Processes, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as res:
                if res.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"SuperLink not healthy after {STARTUP_TIMEOUT}s:\n{procs.log('superlink')}")


@contextlib.contextmanager
def superlink_with_supernodes(
    root: Path, connection: str, n_nodes: int, *, partitioned: bool = False
) -> Iterator[tuple[Processes, Path]]:
    """A running SuperLink with `n_nodes` SuperNodes; yields (processes, FLWR_HOME).

    FLWR_HOME (`root / "flwr-home"`) names the SuperLink `connection`, its
    default. With `partitioned`, SuperNode i has node config `partition-id=i
    num-partitions=n_nodes`. On exit every process is stopped, and the exit
    fails if any of them (or their descendants) outlives the cleanup.
    """
    home = root / "flwr-home"
    home.mkdir()
    env = flwr_env(home)
    link_port = free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{connection}"\n\n'
        f'[superlink.{connection}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
    )
    procs = Processes(root, env)
    try:
        procs.start(
            "superlink",
            "flower-superlink",
            "--insecure",
            "--host",
            "127.0.0.1",
            "--port",
            str(link_port),
            "--disable-runtime-dependency-installation",
        )
        _wait_for_superlink(procs, link_port)
        for node in range(n_nodes):
            node_config = ["--node-config", f"partition-id={node} num-partitions={n_nodes}"]
            procs.start(
                f"supernode-{node}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                *(node_config if partitioned else []),
            )
        time.sleep(1.0)
        procs.check_alive()
        yield procs, home
    finally:
        survivors = procs.stop()
    assert not survivors, f"processes left running after cleanup: {survivors}"
