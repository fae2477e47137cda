"""flwr_declearn imports without any ML framework; framework parts name their extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = (
    "import sys\n"
    "for name in ('torch', 'tensorflow', 'keras', 'jax', 'jaxlib', 'haiku', 'optax'):\n"
    "    sys.modules[name] = None  # any import of these now raises ImportError\n"
)


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_package_imports_without_torch_tensorflow_or_jax() -> None:
    proc = run_blocked(
        """
        import importlib, pkgutil
        import flwr_declearn
        skip = ("flwr_declearn.model.torch", "flwr_declearn.model.tensorflow",
                "flwr_declearn.model.haiku")
        for info in pkgutil.walk_packages(flwr_declearn.__path__, "flwr_declearn."):
            public = not any(part.startswith("_") for part in info.name.split("."))
            if public and not info.name.startswith(skip):
                importlib.import_module(info.name)
        loaded = [m for m in ("torch", "tensorflow", "jax") if sys.modules.get(m) is not None]
        assert not loaded, loaded
        print("imported")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout


def test_framework_import_without_its_framework_names_the_extra() -> None:
    for module, extra in (("torch", "torch"), ("tensorflow", "tensorflow"), ("haiku", "haiku")):
        proc = run_blocked(f"import flwr_declearn.model.{module}")
        assert proc.returncode != 0
        assert "ImportError" in proc.stderr
        assert f"pip install 'flwr-declearn[{extra}]'" in proc.stderr
