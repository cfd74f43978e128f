"""The nutter notebook fixtures (tests/nutter) run here through the local notebook harness.

They are the same notebooks deploy.yml runs on a cluster with the nutter CLI: they call the
real sync, ingest and transform notebooks with ``dbutils.notebook.run`` and report with
nutter's own result object. Here the results are read back the way the CLI reads them on
a CI runner (no pyspark or lakeline there), and the fixtures run against notebooks that
claim success without doing anything must report failures: a fixture that cannot fail
proves nothing.
"""

from __future__ import annotations

import base64
import io
import pickle
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lakeline.local.notebooks import run_notebook

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "nutter"
NOTEBOOKS = REPO / "src" / "notebooks"

# A notebook that claims success and does nothing: what a broken step looks like from outside.
# The fixtures run against such notebooks must fail (each run takes seconds, not minutes).
NO_OP_NOTEBOOK = """# Databricks notebook source
import json

dbutils.notebook.exit(json.dumps({"status": "succeeded", "rows_read": 0, "rows_written": 0,
                                  "details": {"files": []}}))
"""


class RunnerUnpickler(pickle.Unpickler):
    """Reads nutter's results as the nutter CLI on a CI runner can: only its own classes and
    builtins are importable there (not pyspark, not lakeline)."""

    def find_class(self, module: str, name: str):
        if module == "builtins" or module.split(".")[0] == "common":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the nutter CLI could not import {module}.{name}")


def run_fixture(spark, scratch: Path, fixture: str, notebooks_dir: Path | None = None):
    """Run one fixture notebook; nutter's TestResults, read back as the CLI reads them."""
    parameters = {"catalog": f"nutter_{uuid.uuid4().hex[:8]}", "scratch_root": str(scratch)}
    if notebooks_dir is not None:
        parameters["notebooks_dir"] = str(notebooks_dir)
    value = run_notebook(FIXTURES / f"{fixture}.py", spark, parameters)
    assert value, f"{fixture} did not exit with nutter's results"
    return RunnerUnpickler(io.BytesIO(base64.decodebytes(value.encode()))).load()


def failures(results) -> dict[str, str]:
    return {r.test_name: r.stack_trace for r in results.results if not r.passed}


CASES = {"test_ingest": 3, "test_transform": 4}


@pytest.fixture(scope="module")
def passing_runs(spark, tmp_path_factory) -> dict:
    """Both fixtures against the real notebooks, at the same time on the one session (each in
    its own catalog and folder), as two nutter runs on one cluster would go."""
    with ThreadPoolExecutor(max_workers=len(CASES), thread_name_prefix="nutter") as pool:
        runs = {
            name: pool.submit(run_fixture, spark, tmp_path_factory.mktemp(name), name)
            for name in CASES
        }
        return {name: run.result() for name, run in runs.items()}


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_fixture_passes_against_the_real_notebooks(passing_runs, fixture):
    results = passing_runs[fixture]
    assert failures(results) == {}
    assert results.test_cases == CASES[fixture] and results.num_failures == 0
    assert results.passed()


@pytest.mark.parametrize(
    ("fixture", "failing"),
    [
        ("test_ingest", {"ingest", "ingest_keeps_every_row_as_text", "ingest_stamps_lineage"}),
        ("test_transform", {"silver", "silver_is_typed", "silver_quarantines_the_malformed_row"}),
    ],
)
def test_fixture_fails_against_notebooks_that_do_nothing(spark, tmp_path, fixture, failing):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in ("sync", "ingest", "transform"):
        (notebooks / f"{name}.py").write_text(NO_OP_NOTEBOOK)
    results = run_fixture(spark, tmp_path / "scratch", fixture, notebooks_dir=notebooks)
    assert not results.passed()
    assert failing <= set(failures(results)), failures(results)
    # Failures carry only builtin exceptions, so the CLI can report them: a missing table's
    # AnalysisException arrives as a RuntimeError naming it (nutter_scenario.portable).
    errors = [r.exception for r in results.results if not r.passed]
    assert {type(e).__module__ for e in errors} == {"builtins"}
    assert any("AnalysisException: [TABLE_OR_VIEW_NOT_FOUND]" in str(e) for e in errors), errors
