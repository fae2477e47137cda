"""Developer sessions: `python3 -m nox` runs lint, typecheck, tests-core, tests and declearn-compat.

`tests` includes `tests/benchmarks` (the `--quick` non-IID check, also alone as `bench-quick`).

Each session installs into its own virtualenv under `.nox/`, so a fresh machine
needs nothing but `pip install nox`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests-core", "tests", "declearn-compat"]
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


@nox.session(name="declearn-compat")
def declearn_compat(session: nox.Session) -> None:
    """declearn 2.9.1's own tests (areas we implement) through the `declearn` shim in compat/.

    Fails on any failure that `compat/expected_failures.txt` (each listed in the
    README's "Differences from declearn 2.9.1") does not expect.
    """
    session.install("-e", ".[all]", "pytest", "scikit-learn", "scipy", "pandas")
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m, sys\n"
        "try:\n    m.distribution('declearn')\nexcept m.PackageNotFoundError:\n    sys.exit(0)\n"
        "sys.exit('declearn is installed: the shim must be the only declearn')",
    )
    session.run(
        "python",
        "compat/run_declearn_tests.py",
        "--expected",
        "compat/expected_failures.txt",
        *session.posargs,
    )


@nox.session(name="tests-agilerl")
def tests_agilerl(session: nox.Session) -> None:
    """ILQL loss terms against agilerl 2.58's `ILQL.get_loss` (optional oracle; not default)."""
    session.install("-e", ".[agilerl]", "pytest", "hypothesis")
    session.run(
        "python", "-m", "pytest", *PYTEST_ARGS, "tests/ilql/test_ilql_agilerl.py", *session.posargs
    )


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
