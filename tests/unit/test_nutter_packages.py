"""nutter's top-level ``tests`` package never stands in for the project's own tests/ folder.

nutter 0.1.35 installs packages named ``tests`` (with ``tests.nutter``, ``tests.runtime``,
``tests.cli``, ``tests.databricks``), ``cli``, ``common`` and ``runtime`` into site-packages.
The measures, each checked here:

1. tests/ has no ``__init__.py`` anywhere: it is never a package, so ``import tests`` (even
   with the repository root on sys.path, as under ``python -m pytest``) finds nutter's and
   nothing of ours ever imports ``tests.*``; shared test code lives in conftest fixtures.
2. pytest runs with ``--import-mode=importlib`` (pyproject.toml): test files are loaded from
   their paths, whatever ``tests`` means on sys.path.
3. importlib mode still names a file by its dotted path (tests/nutter/test_api.py becomes
   ``tests.nutter.test_api``) and reuses a module already in sys.modules under that name.
   Once nutter's module of that name has been imported, pytest would collect nutter's tests
   in place of ours (shown below). So no file under tests/ may share a dotted name with a
   module of nutter's ``tests`` package.
4. tests/nutter holds nutter notebooks, not pytest modules: its conftest ignores them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SITE = Path(importlib.metadata.distribution("nutter").locate_file(""))


def dotted(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def nutter_test_modules() -> set[str]:
    files = importlib.metadata.files("nutter") or []
    return {dotted(SITE / f, SITE) for f in files if f.parts[0] == "tests" and f.suffix == ".py"}


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nutter_installs_a_tests_package_and_ours_is_not_one():
    assert "tests.runtime.test_nutterfixture" in nutter_test_modules()
    assert sorted(REPO.joinpath("tests").rglob("__init__.py")) == []
    # `python -c` puts the repository root first on sys.path, as `python -m pytest` does.
    done = python("import tests; print(tests.__file__)", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == SITE / "tests" / "__init__.py"


def test_no_test_file_of_ours_shares_a_module_name_with_nutter():
    ours = {dotted(p, REPO) for p in REPO.joinpath("tests").rglob("*.py")}
    assert ours & nutter_test_modules() == set()


def test_nothing_imports_the_tests_package():
    offenders = []
    for folder in ("src", "tests", "bench"):
        for path in REPO.joinpath(folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                if any(n == "tests" or n.startswith("tests.") for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


PRELOAD_NUTTER_AND_COLLECT = """
    import importlib, pkgutil, sys
    import pytest
    import tests  # nutter's
    for info in pkgutil.walk_packages(tests.__path__, "tests."):
        try:
            importlib.import_module(info.name)
        except ImportError:  # some need `mock`, which nutter does not install
            pass
    assert "tests.nutter.test_api" in sys.modules
    sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *{targets!r}]))
"""


def test_collection_loads_our_files_after_nutters_tests_were_imported():
    targets = ["tests/unit/test_nutter_packages.py", "tests/nutter"]
    done = python(PRELOAD_NUTTER_AND_COLLECT.format(targets=targets), cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    ours = {n for n in dir(sys.modules[__name__]) if n.startswith("test_")}
    assert {line.split("::")[1] for line in collected} == ours
    assert all(line.startswith("tests/unit/test_nutter_packages.py::") for line in collected)


def test_a_clashing_name_would_be_shadowed(tmp_path):
    """Why measure 3 exists: the same collection with a file named like one of nutter's."""
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --import-mode=importlib\n")
    clash = tmp_path / "tests" / "nutter" / "test_api.py"
    clash.parent.mkdir(parents=True)
    clash.write_text("def test_ours():\n    pass\n")
    done = python(PRELOAD_NUTTER_AND_COLLECT.format(targets=["tests"]), cwd=tmp_path)
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    assert collected and "tests/nutter/test_api.py::test_ours" not in collected
