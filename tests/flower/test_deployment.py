"""`flwr run` of the quickstart app: on a SuperLink with 3 SuperNodes, and as the README says.

Everything listens on 127.0.0.1 only, on free ports, with a private
FLWR_HOME. Flower 1.41 serves the SuperLink's Fleet, Control and Runtime
APIs over one HTTP port (`--host/--port`); each SuperNode has its own
Runtime API port (`--port`) for the ClientApp processes it launches. The
`flwr` CLI reads its SuperLink connections from `$FLWR_HOME/config.toml`.

With the default connection (`address = ":local:"`), `flwr run` itself
starts a detached simulation SuperLink on the ports named by
FLWR_LOCAL_SUPERLINK_HTTP_API_PORT / FLWR_LOCAL_CONTROL_API_PORT.

SuperLink and SuperNodes start their own children (SuperExec, ServerApp,
ClientApp and simulation processes) in new sessions, so cleanup walks the
process tree before terminating it, and kills whatever does not exit in time.
"""

from __future__ import annotations

import json
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

pytest.importorskip("torch")
pytest.importorskip("sklearn")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="process-group cleanup needs POSIX"),
]

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
BIN_DIR = Path(sys.executable).parent  # flower-superlink, flower-supernode, flwr, ...
N_NODES = 3
ROUNDS = 2
SIM_ROUNDS = 3
CONNECTION = "e2e-deployment"
STARTUP_TIMEOUT = 90.0
RUN_TIMEOUT = 420.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _kill_tree(roots: list[int], grace: float = 10.0) -> list[int]:
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


def _find_processes(*needles: str) -> list[int]:
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


def _flwr_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLWR_HOME": str(home),
        "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _flwr_run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `flwr run ARGS`; return its output, failing the test on error or timeout."""
    start = time.monotonic()
    run = subprocess.Popen(
        [str(BIN_DIR / "flwr"), "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        output, _ = run.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_tree([run.pid], grace=1.0)
        output, _ = run.communicate()
        pytest.fail(f"`flwr run` timed out after {RUN_TIMEOUT}s:\n{output.decode()[-5000:]}")
    text = output.decode(errors="replace")
    print(f"\nflwr run: {time.monotonic() - start:.1f}s")
    assert run.returncode == 0, text[-5000:]
    assert "Successfully started run" in text, text[-5000:]
    return text


def _check_results(result_file: Path, rounds: int, min_accuracy: float, log: str) -> None:
    assert result_file.exists(), log[-5000:]
    history = json.loads(result_file.read_text())["rounds"]
    assert [r["round"] for r in history] == list(range(rounds + 1))
    print("accuracy by round:", [round(r["accuracy"], 3) for r in history])
    assert history[0]["accuracy"] < 0.3
    assert history[-1]["accuracy"] >= min_accuracy
    # The per-round accuracy the quickstart promises is in the streamed logs.
    assert f"round {rounds}: test accuracy" in log, log[-5000:]


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
        survivors = _kill_tree([proc.pid for proc in self.procs.values()])
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


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Path]]:
    """A running SuperLink with N_NODES SuperNodes; yields (processes, FLWR_HOME)."""
    root = tmp_path_factory.mktemp("deployment")
    home = root / "flwr-home"
    home.mkdir()
    env = _flwr_env(home)
    link_port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
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
        for node in range(N_NODES):
            procs.start(
                f"supernode-{node}",
                "flower-supernode",
                "--insecure",
                "--superlink",
                f"127.0.0.1:{link_port}",
                "--host",
                "127.0.0.1",
                "--port",
                str(_free_port()),
                "--node-config",
                f"partition-id={node} num-partitions={N_NODES}",
            )
        time.sleep(1.0)
        procs.check_alive()
        yield procs, home
    finally:
        survivors = procs.stop()
    assert not survivors, f"processes left running after cleanup: {survivors}"


def test_quickstart_runs_with_flwr_run_on_superlink_and_3_supernodes(
    federation: tuple[Processes, Path],
) -> None:
    procs, home = federation
    result_file = home.parent / "result.json"
    # Each ClientApp message starts a fresh process (imports torch): keep the rounds few.
    overrides = (
        f"num-server-rounds={ROUNDS} min-clients={N_NODES} server-lrate=0.1 "
        f'result-file="{result_file}"'
    )
    log = _flwr_run(
        [str(EXAMPLE_DIR), CONNECTION, "--stream", "--run-config", overrides],
        procs.env,
        home.parent,
    )
    procs.check_alive()  # the federation survived the run
    _check_results(result_file, ROUNDS, 0.5, log)


def test_readme_command_trains_quickstart_on_the_local_simulation_superlink(
    tmp_path: Path,
) -> None:
    """The README's `flwr run examples/quickstart --stream --federation-config ...`."""
    home = tmp_path / "flwr-home"  # no config.toml: flwr writes its default (":local:")
    env = _flwr_env(home)
    http_port, control_port = _free_port(), _free_port()
    env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(http_port)
    env["FLWR_LOCAL_CONTROL_API_PORT"] = str(control_port)
    result_file = tmp_path / "result.json"
    overrides = f'num-server-rounds={SIM_ROUNDS} result-file="{result_file}"'
    try:
        log = _flwr_run(
            [
                str(EXAMPLE_DIR),
                "--stream",
                "--federation-config",
                "num-supernodes=10 client-resources-num-cpus=1",
                "--run-config",
                overrides,
            ],
            env,
            tmp_path,
        )
    finally:
        # `flwr run` leaves its local SuperLink running, detached: find it by its port.
        superlinks = _find_processes("flower-superlink", f"--port {http_port} ")
        survivors = _kill_tree(superlinks)
    assert superlinks, "flwr run did not start a local SuperLink"
    assert not survivors, f"processes left running after cleanup: {survivors}"
    assert "Federation `@none/default` (10 simulated SuperNodes)" in log, log[-5000:]
    _check_results(result_file, SIM_ROUNDS, 0.5, log)
