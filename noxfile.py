"""Developer sessions: `python3 -m nox` runs lint, typecheck, tests-core, tests and bench-quick.

Each session installs into its own virtualenv under `.nox/`, so a fresh machine
needs nothing but `pip install nox`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests-core", "tests", "bench-quick"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTEST_ARGS = ["-p", "no:cacheprovider", "-ra", "--durations=15"]


@nox.session
def tests(session: nox.Session) -> None:
    """Full suite (slow end-to-end tests included) with every framework installed."""
    session.install("-e", ".[all,dev]")
    session.run("python", "-m", "pytest", *PYTEST_ARGS, *session.posargs)


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """Core tests in an environment without torch, tensorflow or jax."""
    session.install("-e", ".", "pytest", "hypothesis")
    for framework in ("torch", "tensorflow", "jax"):
        session.run(
            "python",
            "-c",
            f"import importlib.util as u, sys; sys.exit(u.find_spec('{framework}') is not None)",
        )
    session.run(
        "python", "-c", "import flwr_declearn, flwr_declearn.optimizer, flwr_declearn.flower"
    )
    session.run("python", "-m", "pytest", *PYTEST_ARGS, "tests/core", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type checks with mypy."""
    session.install("-e", ".[all]", "mypy")
    session.run("mypy", "flwr_declearn")


@nox.session(name="bench-quick")
def bench_quick(session: nox.Session) -> None:
    """`benchmarks/noniid.py --quick` (equivalence with Flower's strategies) through its test."""
    session.install("-e", ".[bench]", "pytest")
    session.run("python", "-m", "pytest", *PYTEST_ARGS, "tests/benchmarks", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Full non-IID shoot-out and scale benchmarks (long; not run by default)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/noniid.py", *session.posargs)
    session.run("python", "benchmarks/scale.py")
