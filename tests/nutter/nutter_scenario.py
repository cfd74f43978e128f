"""The small dataset the nutter fixtures run the real notebooks on, and how they run them.

One CSV drop of five orders: order 2 arrives twice (the later version must win in silver)
and order 3 has an order date that is not a date (it must land in bronze as text and go
to quarantine, not to silver). Metadata, landing files and checkpoints live in a scratch
folder of their own; the dataset id is unique per run, so a run never sees another run's
tables.

The same code runs in a workspace (nutter CLI, deploy.yml) and locally (pytest through
lakeline.local.notebooks): the notebooks are called with ``dbutils.notebook.run`` either
way, with every widget given explicitly.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import uuid

DATASET_YAML = """\
id: {dataset}
description: Orders for the nutter notebook tests.
owner: lakeline-tests
source:
  format: csv
  path: orders
load:
  type: full
columns:
  - name: order_id
    type: bigint
    nullable: false
  - name: customer_id
    type: bigint
  - name: order_date
    type: date
  - name: order_status
    type: string
  - name: shipping_fee
    type: decimal(12,2)
  - name: updated_at
    type: timestamp
    nullable: false
primary_key: [order_id]
sequence_column: updated_at
"""

CSV_NAME = "orders_2024-03-02.csv"
CSV = """\
order_id,customer_id,order_date,order_status,shipping_fee,updated_at
1,101,2024-03-01,placed,4.95,2024-03-01T10:00:00
2,102,2024-03-01,placed,0.00,2024-03-01T11:00:00
2,102,2024-03-01,shipped,0.00,2024-03-02T09:00:00
3,103,not-a-date,placed,4.95,2024-03-01T12:00:00
4,104,2024-03-02,delivered,12.50,2024-03-02T08:00:00
"""
ROWS_IN_FILE = 5

# What silver must hold afterwards: one row per key, the latest version (as strings, so
# the comparison does not depend on the Python process's time zone).
SILVER = [
    ("1", "101", "2024-03-01", "placed", "4.95", "2024-03-01 10:00:00"),
    ("2", "102", "2024-03-01", "shipped", "0.00", "2024-03-02 09:00:00"),
    ("4", "104", "2024-03-02", "delivered", "12.50", "2024-03-02 08:00:00"),
]
SILVER_TYPES = {
    "order_id": "bigint",
    "customer_id": "bigint",
    "order_date": "date",
    "order_status": "string",
    "shipping_fee": "decimal(12,2)",
    "updated_at": "timestamp",
}
MALFORMED_ORDER = "3"

NOTEBOOK_TIMEOUT_SECONDS = 900


def in_workspace() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


class Scenario:
    """One run of the fixture: its folders, its dataset, and the notebooks it calls."""

    def __init__(self, spark, dbutils, *, catalog: str, scratch_root: str, notebooks_dir: str):
        from lakeline.environment import Environment
        from lakeline.session import is_unity_catalog

        self.spark = spark
        self.dbutils = dbutils
        self.notebooks_dir = notebooks_dir.rstrip("/")
        suffix = uuid.uuid4().hex[:10]
        self.dataset = f"orders_{suffix}"
        self.run_id = f"nutter-{suffix}"
        unity = is_unity_catalog(spark)
        if scratch_root:
            self.root = posixpath.join(scratch_root, self.run_id)
        elif unity:
            self.root = f"/Volumes/{catalog}/ops/nutter/{self.run_id}"
        else:
            self.root = tempfile.mkdtemp(prefix=f"{self.run_id}-")
        self.env = Environment(
            catalog=catalog,
            landing_root=posixpath.join(self.root, "landing"),
            checkpoint_root=posixpath.join(self.root, "checkpoints"),
            unity_catalog=unity,
        )
        self.metadata_dir = posixpath.join(self.root, "metadata")

    def land(self) -> None:
        """Write the dataset's metadata and its one CSV file into the scratch folder."""
        if self.env.unity_catalog and self.root.startswith("/Volumes/"):
            self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.env.schema('ops')}")
            self.spark.sql(f"CREATE VOLUME IF NOT EXISTS {self.env.schema('ops')}.`nutter`")
        datasets = os.path.join(self.metadata_dir, "datasets")
        landing = os.path.join(self.env.landing_root, "orders")
        os.makedirs(datasets, exist_ok=True)
        os.makedirs(landing, exist_ok=True)
        with open(os.path.join(datasets, f"{self.dataset}.yml"), "w") as f:
            f.write(DATASET_YAML.format(dataset=self.dataset))
        with open(os.path.join(landing, CSV_NAME), "w") as f:
            f.write(CSV)

    def run(self, notebook: str, **widgets: str) -> dict:
        """Run one of src/notebooks with this scenario's widgets; its exit value, parsed."""
        arguments = {
            "catalog": self.env.catalog,
            "landing_root": self.env.landing_root,
            "checkpoint_root": self.env.checkpoint_root,
            "metadata_dir": self.metadata_dir,
            "run_id": self.run_id,
            **widgets,
        }
        path = f"{self.notebooks_dir}/{notebook}"
        if in_workspace() and path.startswith("/Workspace/"):
            path = path.removeprefix("/Workspace")  # a workspace path, not its file-system mount
        value = self.dbutils.notebook.run(path, NOTEBOOK_TIMEOUT_SECONDS, arguments)
        return json.loads(value) if value else {}

    def table(self, schema: str):
        return self.spark.table(self.env.table(schema, self.dataset))

    def clean(self) -> None:
        """Drop this run's tables and scratch folder (the control table is rewritten by sync)."""
        for schema in ("bronze", "silver", "quarantine"):
            self.spark.sql(f"DROP TABLE IF EXISTS {self.env.table(schema, self.dataset)}")
        shutil.rmtree(self.root, ignore_errors=True)


def portable(results) -> None:
    """Make nutter's results readable where the nutter CLI unpickles them.

    The CLI runs on a CI runner without pyspark or lakeline: an exception of their types in
    a failed test case would make it crash while reading the results instead of reporting
    the failure. Such exceptions are replaced by a RuntimeError with the same message (the
    stack trace is kept as text).
    """
    for case in results.test_results.results:
        error = case.exception
        if error is not None and type(error).__module__ != "builtins":
            kind = f"{type(error).__module__}.{type(error).__name__}"
            case.exception = RuntimeError(f"{kind}: {error}")
