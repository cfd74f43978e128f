# Databricks notebook source
# MAGIC %md
# MAGIC # nutter · ingest
# MAGIC Runs the `sync` and `ingest` notebooks on one small CSV drop (five orders, one of them
# MAGIC twice, one with a malformed date) and checks bronze: every row lands once, as text,
# MAGIC with its run id, source file and ingestion time.
# MAGIC
# MAGIC Widgets: `catalog` holds the test tables (in a workspace, a catalog kept for these
# MAGIC tests; every run uses a dataset id of its own); `scratch_root` holds metadata, landing
# MAGIC files and checkpoints (default: the volume `<catalog>.ops.nutter`, or a temporary folder
# MAGIC off Databricks); `notebooks_dir` is where the notebooks under test are, relative to this
# MAGIC one or absolute (`/Workspace/...`).
# MAGIC
# MAGIC On a cluster: `nutter run` (.github/workflows/deploy.yml). Locally: pytest runs it
# MAGIC through the notebook harness (tests/harness/test_nutter_fixtures.py).

# COMMAND ----------

# MAGIC %pip install nutter==0.1.35

# COMMAND ----------

# ruff: noqa: F821, E402 - `spark` and `dbutils` come from the runtime or the local harness
import os
import sys

dbutils.widgets.text("catalog", "lakeline_nutter", "Catalog for the test tables")
dbutils.widgets.text("scratch_root", "", "Scratch folder (default: volume ops.nutter)")
dbutils.widgets.text("notebooks_dir", "../../src/notebooks", "Notebooks under test")

# This folder (nutter_scenario) and src/lib (lakeline) on the path. In a workspace the current
# directory is the notebook's own; the local harness gives the notebook its __file__.
here = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
notebooks_dir = dbutils.widgets.get("notebooks_dir")
for folder in (here, os.path.normpath(os.path.join(here, notebooks_dir, "..", "lib"))):
    if folder not in sys.path:
        sys.path.insert(0, folder)

# COMMAND ----------

from nutter_scenario import CSV_NAME, MALFORMED_ORDER, ROWS_IN_FILE, Scenario, portable
from runtime.nutterfixture import NutterFixture


class IngestFixture(NutterFixture):
    """Bronze for one small CSV drop, through the real sync and ingest notebooks.

    nutter runs the test cases in the order of their names: `ingest` (which runs the
    notebook) before the assertions on what it wrote.
    """

    def __init__(self, scenario: Scenario):
        super().__init__()
        self.scenario = scenario
        self.ingest_exit = {}

    def before_all(self):
        self.scenario.land()
        synced = self.scenario.run("sync")
        assert synced.get("status") == "succeeded", f"sync: {synced}"

    def run_ingest(self):
        self.ingest_exit = self.scenario.run("ingest", dataset=self.scenario.dataset)

    def assertion_ingest(self):
        out = self.ingest_exit
        assert out.get("status") == "succeeded", f"ingest exited with {out}"
        assert out["rows_written"] == ROWS_IN_FILE, out
        files = out["details"]["files"]
        assert len(files) == 1 and files[0].endswith(CSV_NAME), files

    def assertion_ingest_keeps_every_row_as_text(self):
        bronze = self.scenario.table("bronze")
        source = [f for f in bronze.schema.fields if not f.name.startswith("_")]
        assert {f.dataType.simpleString() for f in source} == {"string"}, bronze.schema
        rows = bronze.collect()
        assert len(rows) == ROWS_IN_FILE, rows
        assert sorted(r["order_id"] for r in rows) == ["1", "2", "2", "3", "4"]
        [malformed] = [r for r in rows if r["order_id"] == MALFORMED_ORDER]
        assert malformed["order_date"] == "not-a-date", malformed

    def assertion_ingest_stamps_lineage(self):
        bronze = self.scenario.table("bronze")
        rows = bronze.select("_run_id", "_source_file", "_ingested_at").collect()
        assert len(rows) == ROWS_IN_FILE, rows
        for row in rows:
            assert row["_run_id"] == self.scenario.run_id, row
            assert row["_source_file"].endswith(f"/orders/{CSV_NAME}"), row
            assert row["_ingested_at"] is not None, row

    def after_all(self):
        # Keep the tables and files of a failed run for a look; clean up after a good one.
        if all(case.passed for case in self.test_results.results):
            self.scenario.clean()


# COMMAND ----------

scenario = Scenario(
    spark,
    dbutils,
    catalog=dbutils.widgets.get("catalog"),
    scratch_root=dbutils.widgets.get("scratch_root"),
    notebooks_dir=notebooks_dir,
)
result = IngestFixture(scenario).execute_tests()
portable(result)
print(result.to_string())
result.exit(dbutils)
