"""lakeline over Spark Connect (what Databricks Connect is), against a real local server.

``child.py`` starts a Spark Connect server over Delta in a process of its own (this one
already runs the suite's classic session) and drives it through a Connect client session,
which has no JVM: nothing of the library may reach for ``_jvm``, ``sparkContext`` or an
``Observation``, and every foreachBatch function runs in a Python worker beside the
server. The job's gold tables must equal the independently computed rows of
tests/expected, as in the classic end-to-end test.

databricks-connect 15.4 cannot talk to an OSS Spark 3.5 server, so the client here is
pyspark's own Connect client (the same API surface). No mock: the real server runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DATASETS = ["customers", "order_lines", "orders", "products"]


@pytest.fixture(scope="module")
def connect_run(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("connect")
    dump = work / "result.json"
    done = subprocess.run(
        [sys.executable, str(HERE / "child.py"), str(work), str(dump)],
        cwd=HERE.parents[1],
        env={k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "PYSPARK_PYTHON")},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0 and dump.is_file(), (
        f"the Spark Connect run failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n"
        f"{done.stderr[-8000:]}"
    )
    return json.loads(dump.read_text())


def test_the_session_is_spark_connect_and_not_databricks(connect_run):
    assert connect_run["session_type"] == "pyspark.sql.connect.session.SparkSession"
    assert connect_run["is_connect"] is True
    # A plain Spark Connect server: no Auto Loader, no Unity Catalog names.
    assert connect_run["on_databricks"] is False


def test_file_helpers_work_without_a_jvm(connect_run):
    files = connect_run["files"]
    orders = HERE.parents[1] / "fixtures" / "retail" / "batch_2" / "orders"
    assert files.pop("listed") == sorted(f"file:{p}" for p in orders.iterdir() if p.is_file())
    assert files == {
        "missing": None,
        "read": '{"a": 1}\n',  # the text source ends its line
        "has_files": True,
        "has_files_missing": False,
        "after_delete": False,
    }


def test_a_failing_batch_reaches_the_client_with_its_cause_and_results(connect_run):
    failed = connect_run["failing_stream"]
    assert failed["kind"] == "DataError"
    assert failed["error"] == "dataset 'numbers', probe: ValueError: no batch 0 today"
    assert failed["collected"] == [{"rows": 5}]


def test_every_run_succeeds(connect_run):
    for label, run in connect_run["runs"].items():
        assert run["ok"], (label, run["errors"])
    assert list(connect_run["runs"]) == ["batch_1", "batch_2"]


@pytest.mark.parametrize("batch", ["batch_1", "batch_2"])
def test_gold_matches_independently_computed_rows(connect_run, batch):
    gold = connect_run["runs"][batch]["gold"]
    for table, rows in gold.items():
        assert rows["actual"] == rows["expected"], table


def _outputs(run: dict, step: str) -> dict:
    return {o["dataset"]: o for o in run["outputs"] if o.get("step") == step}


def test_counts_match_the_classic_run(connect_run):
    # The same numbers as tests/e2e/test_medallion.py (bronze counts without Observation,
    # silver counts and quality reports from the batches' results table).
    run = connect_run["runs"]["batch_2"]
    silver, bronze = _outputs(run, "silver"), _outputs(run, "bronze")
    got = {
        d: {k: silver[d]["details"][k] for k in ("read", "quarantined", "inserted", "updated")}
        for d in DATASETS
    }
    assert got == {
        "customers": {"read": 7, "quarantined": 0, "inserted": 2, "updated": 3},
        "products": {"read": 5, "quarantined": 0, "inserted": 1, "updated": 3},
        "orders": {"read": 16, "quarantined": 1, "inserted": 9, "updated": 4},
        "order_lines": {"read": 26, "quarantined": 1, "inserted": 23, "updated": 1},
    }
    for dataset in DATASETS:
        d = silver[dataset]["details"]
        assert silver[dataset]["rows_read"] == bronze[dataset]["rows_written"], dataset
        assert d["read"] == d["merged"] + d["quarantined"] + d["duplicates"], (dataset, d)
        assert bronze[dataset]["details"]["files"], dataset
    assert silver["customers"]["details"]["stale"] == 1


def test_malformed_row_is_quarantined_with_its_reason(connect_run):
    [bad] = connect_run["quarantine_orders"]
    assert bad["reasons"] == ["column 'shipping_fee': value does not fit type decimal(12,2)"]
    assert json.loads(bad["record"])["order_id"] == "20048"
    assert bad["run_id"].endswith("batch_2")
