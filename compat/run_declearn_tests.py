"""Run declearn 2.9.1's own tests against flwr_declearn, through the `declearn` shim.

    python compat/run_declearn_tests.py [--areas optimizer,vector] [--failures FILE]
                                        [--expected FILE] [-- PYTEST_ARGS]

Fetches declearn's source distribution with pip (once, into `--cache`),
extracts its `test/` tree only (never the declearn package), and runs the
test files of the areas flwr_declearn implements, unmodified, with
`compat/shim` first on the path so that `import declearn` imports our
re-exports. Prints pass / fail / error / skip counts per area; `--failures`
writes every failing test id with its one-line reason (Markdown). Exits
non-zero when a test fails that `--expected` (a file of known failures,
one node id per line) does not list.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

VERSION = "2.9.1"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

AREAS: dict[str, list[str]] = {
    "optimizer": ["test/optimizer"],
    "vector": ["test/vector"],
    "model": [
        "test/model/test_torch_model.py",
        "test/model/test_tflow_model.py",
        "test/model/test_haiku_model.py",
    ],
    "registry": ["test/utils/test_register.py"],
    "data_info": ["test/data_info"],
    "dataset": ["test/dataset/test_inmemory.py"],
    "metrics": ["test/metrics"],
}
# Tests per area when declearn 2.9.1 itself runs them (all pass, 4 GPU ones skip),
# with torch, tensorflow(-cpu) and jax installed: a file we fail to collect counts in full.
DECLEARN_TOTALS = {
    "optimizer": 680,
    "vector": 155,
    "model": 232,
    "registry": 9,
    "data_info": 30,
    "dataset": 26,
    "metrics": 347,
}


def fetch_tests(cache: Path) -> Path:
    """Download declearn's sdist (if needed) and extract its `test/` tree; return its parent."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"declearn-{VERSION}"
    if (target / "test" / "__init__.py").exists():
        return target
    sdist = cache / f"declearn-{VERSION}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"declearn=={VERSION}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
    prefix = f"declearn-{VERSION}/test/"
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
        archive.extractall(cache, members=members, filter="data")
    return target


def area_of(nodeid: str) -> str:
    """Name the area a test node id belongs to."""
    path = nodeid.split("::", 1)[0]
    for area, paths in AREAS.items():
        if any(path == p or path.startswith(p + "/") for p in paths):
            return area
    return "other"


def run(areas: list[str], cache: Path, pytest_args: list[str]) -> list[dict[str, str]]:
    """Run the areas' test files under the shim; return one record per test."""
    tree = fetch_tests(cache)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "results.jsonl"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        env = dict(os.environ)
        path = [str(HERE / "shim"), str(HERE), str(tree), str(ROOT)]
        env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["DECLEARN_COMPAT_LOG"] = str(log)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        files = [p for area in areas for p in AREAS[area]]
        cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tree),
               "-p", "_pytest_compat", "-p", "no:cacheprovider", "-q", "--tb=no", "--no-header",
               "--continue-on-collection-errors", "-W", "ignore::DeprecationWarning",
               *pytest_args, *files]  # fmt: skip
        subprocess.run(cmd, cwd=tree, env=env, check=False)
        if not log.exists():
            return []
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    worst: dict[str, dict[str, str]] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    for rec in records:
        old = worst.get(rec["nodeid"])
        if old is None or rank[rec["outcome"]] > rank[old["outcome"]]:
            worst[rec["nodeid"]] = rec
    return list(worst.values())


def summarize(records: list[dict[str, str]], areas: list[str]) -> str:
    """Per-area counts, as a Markdown table."""
    counts = {area: Counter() for area in areas}
    for rec in records:
        counts.setdefault(area_of(rec["nodeid"]), Counter())[rec["outcome"]] += 1
    lines = [
        "| area | passed | failed | errors | skipped | declearn's count |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    total: Counter = Counter()
    for area, cnt in counts.items():
        total.update(cnt)
        lines.append(
            f"| {area} | {cnt['passed']} | {cnt['failed']} | {cnt['error']} | {cnt['skipped']} "
            f"| {DECLEARN_TOTALS.get(area, '')} |"
        )
    lines.append(
        f"| **all** | {total['passed']} | {total['failed']} | {total['error']} "
        f"| {total['skipped']} | {sum(DECLEARN_TOTALS.get(a, 0) for a in counts)} |"
    )
    lines.append("(errors: a test erroring in set-up, or a whole test file failing to import)")
    return "\n".join(lines)


def failures_markdown(records: list[dict[str, str]]) -> str:
    """Every failing test id with its one-line reason, grouped by area."""
    out: list[str] = []
    bad = sorted(
        (r for r in records if r["outcome"] in ("failed", "error")), key=lambda r: r["nodeid"]
    )
    for area in [*AREAS, "other"]:
        rows = [r for r in bad if area_of(r["nodeid"]) == area]
        if rows:
            out.append(f"\n### {area} ({len(rows)})\n")
            out.extend(f"- `{r['nodeid']}` ({r['outcome']}): {r['reason']}" for r in rows)
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--areas", default=",".join(AREAS), help="comma-separated areas")
    parser.add_argument("--cache", type=Path, default=ROOT / ".declearn-compat")
    parser.add_argument("--failures", type=Path, help="write failing tests (Markdown) here")
    parser.add_argument("--expected", type=Path, help="known failures: one node id per line")
    parser.add_argument(
        "--write-expected", type=Path, help="write the failing node ids (with reasons) here"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    areas = [a for a in args.areas.split(",") if a]
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        parser.error(f"unknown areas {unknown}; known: {sorted(AREAS)}")
    start = time.perf_counter()
    records = run(areas, args.cache, args.pytest_args)
    elapsed = time.perf_counter() - start
    print(f"\ndeclearn {VERSION} test suite against flwr_declearn ({elapsed:.0f} s)")
    print(summarize(records, areas))
    if args.failures:
        args.failures.write_text(failures_markdown(records), encoding="utf-8")
    failing = {r["nodeid"] for r in records if r["outcome"] in ("failed", "error")}
    if args.write_expected:
        lines = [
            f"{r['nodeid']}  # {r['reason'][:160]}"
            for r in sorted(records, key=lambda r: r["nodeid"])
            if r["nodeid"] in failing
        ]
        args.write_expected.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not records:
        print("no test ran")
        return 1
    if args.expected is not None:
        known = {
            line.split("#", 1)[0].strip()
            for line in args.expected.read_text(encoding="utf-8").splitlines()
        } - {""}
        new = sorted(failing - known)
        fixed = sorted(known & {r["nodeid"] for r in records if r["outcome"] == "passed"})
        for nodeid in new:
            print(f"UNEXPECTED FAILURE: {nodeid}")
        for nodeid in fixed:
            print(f"now passing (drop from {args.expected.name}): {nodeid}")
        return 1 if new else 0
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
