"""Every code block of the READMEs is run or checked, so that no snippet can rot.

- python blocks of README.md run, in order, as one script in a fresh interpreter
  (they train on Flower's simulation engine: slow);
- diff blocks ("Port your Flower app") are applied to the template app and the
  result trained by tests/examples/test_port_template.py;
- bash blocks of README.md and examples/**/README.md only name things that exist:
  extras of pyproject.toml, Flower apps and their run-config keys, files, Flower's
  commands and their options (tests/examples runs the examples' commands);
- toml blocks parse.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", *sorted((REPO / "examples").glob("**/README.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FLOWER_COMMANDS = {"flwr", "flower-superlink", "flower-supernode"}


def code_blocks(path: Path, lang: str) -> list[str]:
    """The bodies of the fenced blocks of language `lang` in `path`."""
    return [body for kind, body in FENCE.findall(path.read_text()) if kind == lang]


def test_every_fenced_block_has_a_checked_language() -> None:
    for path in READMES:
        kinds = {kind for kind, _ in FENCE.findall(path.read_text())}
        # Untyped and "text" blocks show output: nothing to run.
        assert kinds <= {"python", "bash", "diff", "toml", "text", ""}, (path, kinds)


# -- bash ---------------------------------------------------------------------------------------


def _commands(block: str) -> list[list[str]]:
    """Shell commands of a block (comments dropped, `&&` chains split)."""
    out = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for command in line.split("&&"):
            out.append(shlex.split(command))
    return out


def _extras() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(config["project"]["optional-dependencies"])


def _app_config(app_dir: Path) -> dict[str, object]:
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    return config["tool"]["flwr"]["app"]["config"]  # type: ignore[no-any-return]


def _check_pip(args: list[str], extras: set[str]) -> None:
    assert args[:1] == ["install"], args
    for spec in args[1:]:
        if spec.startswith("-"):
            continue
        match = re.fullmatch(r"(?:flwr-declearn|\.)\[([\w,-]+)\]", spec)
        if match:
            assert set(match.group(1).split(",")) <= extras, spec
        else:
            assert spec == "nox", spec


def _options(text: str) -> dict[str, str]:
    """`key=value` pairs of a Flower config override string (values may be quoted)."""
    return dict(pair.split("=", 1) for pair in shlex.split(text))


@functools.cache
def _flwr_help(*command: str) -> str:
    flwr = Path(sys.executable).parent / command[0]
    assert flwr.exists(), f"{command[0]} is not installed next to {sys.executable}"
    result = subprocess.run(
        [str(flwr), *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _check_flower(command: list[str], readme: Path) -> None:
    name = command[0]
    if name == "flwr":
        assert command[1] == "run", command
        helptext = _flwr_help("flwr", "run")
        app_dir = REPO / command[2]
        assert (app_dir / "pyproject.toml").exists(), f"{command[2]} is not a Flower app"
        keys = set(_app_config(app_dir))
        args = command[3:]
        for i, arg in enumerate(args):
            if arg.startswith("--"):
                assert arg in helptext, f"`flwr run` has no option {arg}"
            if arg == "--run-config":
                assert set(_options(args[i + 1])) <= keys, (readme, args[i + 1], keys)
    else:
        helptext = _flwr_help(name)
        for arg in command[1:]:
            if arg.startswith("--"):
                assert arg in helptext, f"`{name}` has no option {arg}"


def test_bash_blocks_name_existing_extras_apps_config_keys_and_options() -> None:
    extras = _extras()
    checked = 0
    for readme in READMES:
        for block in code_blocks(readme, "bash"):
            for command in _commands(block):
                checked += 1
                if command[:3] in (["python3", "-m", "pip"], ["python", "-m", "pip"]):
                    _check_pip(command[3:], extras)
                elif command[0] == "pip":
                    _check_pip(command[1:], extras)
                elif command[:3] == ["python3", "-m", "nox"]:
                    assert (REPO / "noxfile.py").exists()
                elif command[0] == "bash":
                    assert (REPO / command[1]).exists(), command
                elif command[0] in FLOWER_COMMANDS:
                    _check_flower(command, readme)
                else:
                    pytest.fail(f"{readme}: unchecked command {shlex.join(command)}")
    assert checked >= 5


def test_readme_command_1_runs_the_quickstart_with_10_supernodes() -> None:
    """tests/examples runs this command; here: it is still the README's command 1."""
    (block,) = [b for b in code_blocks(REPO / "README.md", "bash") if "# 1." in b]
    expected = 'flwr run examples/quickstart --stream --federation-config "num-supernodes=10"'
    assert expected in block


def test_toml_blocks_parse() -> None:
    for readme in READMES:
        for block in code_blocks(readme, "toml"):
            tomllib.loads(block)


# -- python -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_python_blocks_of_the_readme_run_in_order(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    pytest.importorskip("ray")
    script = tmp_path / "readme_snippets.py"
    script.write_text("\n\n".join(code_blocks(REPO / "README.md", "python")))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RAY_DEDUP_LOGS": "0",
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=tmp_path,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "client evaluation by round:" in output, output[-6000:]
    # Both simulations (Message API, then legacy) ran their 3 rounds of 4 clients.
    assert output.count("aggregated 4 client update(s)") == 6, output[-6000:]
