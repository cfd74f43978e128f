# Databricks notebook source
# MAGIC %md
# MAGIC # nutter · transform
# MAGIC Runs `sync` and `ingest`, then the `transform` notebook (layer silver) on one small CSV
# MAGIC drop (five orders: order 2 twice, order 3 with a malformed date) and checks silver:
# MAGIC typed, one row per order with its latest version, the malformed row quarantined with
# MAGIC its reason.
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

import json

from nutter_scenario import (
    CSV_NAME,
    MALFORMED_ORDER,
    ROWS_IN_FILE,
    SILVER,
    SILVER_TYPES,
    Scenario,
    portable,
)
from pyspark.sql import functions as F
from runtime.nutterfixture import NutterFixture


class TransformFixture(NutterFixture):
    """Silver for one small CSV drop, through the real sync, ingest and transform notebooks.

    nutter runs the test cases in the order of their names: `silver` (which runs the
    notebook) before the assertions on what it wrote.
    """

    def __init__(self, scenario: Scenario):
        super().__init__()
        self.scenario = scenario
        self.silver_exit = {}

    def before_all(self):
        self.scenario.land()
        for notebook, widgets in (("sync", {}), ("ingest", {"dataset": self.scenario.dataset})):
            out = self.scenario.run(notebook, **widgets)
            assert out.get("status") == "succeeded", f"{notebook}: {out}"

    def run_silver(self):
        self.silver_exit = self.scenario.run(
            "transform", dataset=self.scenario.dataset, layer="silver"
        )

    def assertion_silver(self):
        out = self.silver_exit
        assert out.get("status") == "succeeded", f"transform exited with {out}"
        counts = {k: out["details"].get(k) for k in ("read", "quarantined", "duplicates", "merged")}
        assert counts == {"read": ROWS_IN_FILE, "quarantined": 1, "duplicates": 1, "merged": 3}, out

    def assertion_silver_is_typed(self):
        fields = self.scenario.table("silver").schema.fields
        types = {f.name: f.dataType.simpleString() for f in fields if not f.name.startswith("_")}
        assert types == SILVER_TYPES, types

    def assertion_silver_keeps_the_latest_row_per_order(self):
        silver = self.scenario.table("silver")
        rows = silver.select([F.col(c).cast("string") for c in SILVER_TYPES]).collect()
        assert sorted(tuple(r) for r in rows) == SILVER, rows

    def assertion_silver_quarantines_the_malformed_row(self):
        [row] = self.scenario.table("quarantine").collect()
        assert json.loads(row["record"])["order_id"] == MALFORMED_ORDER, row
        assert any("order_date" in reason for reason in row["reasons"]), row
        assert row["run_id"] == self.scenario.run_id, row
        assert row["source_file"].endswith(CSV_NAME), row

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
result = TransformFixture(scenario).execute_tests()
portable(result)
print(result.to_string())
result.exit(dbutils)
