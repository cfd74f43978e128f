"""The metadata control table: the YAML compiled into Delta, the notebooks' only input.

``sync`` is idempotent: unchanged YAML leaves the table (and its version) untouched;
changed, added and removed objects are applied in one MERGE.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import types as T

from lakeline import merges
from lakeline.environment import Environment
from lakeline.errors import LakelineError
from lakeline.metadata import Dataset, GoldTable, Project, load_project

CONTROL_TABLE = "control"
CONTROL_SCHEMA = T.StructType(
    [
        T.StructField("object_type", T.StringType(), False),
        T.StructField("object_id", T.StringType(), False),
        T.StructField("enabled", T.BooleanType(), False),
        T.StructField("spec", T.StringType(), False),
        T.StructField("spec_hash", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("synced_run_id", T.StringType(), False),
    ]
)


@dataclass(frozen=True)
class SyncResult:
    inserted: int
    updated: int
    deleted: int
    unchanged: int
    table_version: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)


@dataclass(frozen=True)
class Plan:
    """What the control table says to run: datasets (enabled ones) and gold tables."""

    datasets: dict[str, Dataset]
    gold: list[GoldTable]


def _rows(project: Project, run_id: str) -> list[tuple]:
    rows = []
    for dataset_id, dataset in sorted(project.datasets.items()):
        spec = dataset.model_dump_json()
        file = project.dataset_files[dataset_id]
        rows.append(("dataset", dataset_id, dataset.enabled, spec, _hash(spec), file, run_id))
    for name, gold in sorted(project.gold.items()):
        spec = gold.model_dump_json()
        rows.append(("gold", name, True, spec, _hash(spec), gold.file, run_id))
    return rows


def _hash(spec: str) -> str:
    return hashlib.sha256(spec.encode()).hexdigest()


def ensure_control_table(spark, env: Environment) -> str:
    return env.create(
        spark,
        "ops",
        CONTROL_TABLE,
        "(object_type STRING NOT NULL, object_id STRING NOT NULL, enabled BOOLEAN NOT NULL, "
        "spec STRING NOT NULL, spec_hash STRING NOT NULL, source_file STRING NOT NULL, "
        "synced_run_id STRING NOT NULL) USING DELTA "
        "COMMENT 'lakeline metadata control table, compiled from the YAML by sync'",
    )


def sync(spark, env: Environment, metadata_dir: str | Path, run_id: str) -> SyncResult:
    """Compile the YAML under ``metadata_dir`` into the control table.

    Raises MetadataError (every problem in every file) before touching any table.
    """
    project = load_project(metadata_dir)
    env.ensure_schemas(spark)
    name = ensure_control_table(spark, env)
    desired = {(r[0], r[1]): r for r in _rows(project, run_id)}
    current = {
        (r.object_type, r.object_id): r.spec_hash
        for r in spark.table(name).select("object_type", "object_id", "spec_hash").collect()
    }
    inserted = [k for k in desired if k not in current]
    updated = [k for k in desired if k in current and current[k] != desired[k][4]]
    deleted = [k for k in current if k not in desired]
    unchanged = len(desired) - len(inserted) - len(updated)
    if inserted or updated or deleted:
        # The source is the whole YAML, not only what changed: rows missing from the source
        # are deleted, so a source of the changes alone would delete every unchanged object.
        # Unchanged rows match with equal hashes and are left alone.
        desired_rows = spark.createDataFrame(list(desired.values()), CONTROL_SCHEMA)
        merges.merge(
            name,
            desired_rows,
            "t.object_type = s.object_type AND t.object_id = s.object_id",
            [
                "WHEN MATCHED AND t.spec_hash <> s.spec_hash THEN UPDATE SET *",
                "WHEN NOT MATCHED THEN INSERT *",
                "WHEN NOT MATCHED BY SOURCE THEN DELETE",
            ],
        )
    version = merges.latest_version(spark, name)
    return SyncResult(len(inserted), len(updated), len(deleted), unchanged, version)


def load_plan(spark, env: Environment) -> Plan:
    """Read the control table back into typed models."""
    name = env.table("ops", CONTROL_TABLE)
    if not env.exists(spark, "ops", CONTROL_TABLE):
        raise LakelineError(f"control table {name} does not exist; run the sync task first")
    rows = spark.table(name).collect()
    datasets = {
        r.object_id: Dataset.model_validate_json(r.spec)
        for r in rows
        if r.object_type == "dataset" and r.enabled
    }
    gold = {
        r.object_id: GoldTable.model_validate_json(r.spec) for r in rows if r.object_type == "gold"
    }
    project = Project(root="<control table>", datasets=datasets, dataset_files={}, gold=gold)
    return Plan(datasets=datasets, gold=project.gold_order())


def dataset_from_control(spark, env: Environment, dataset_id: str) -> Dataset:
    plan = load_plan(spark, env)
    if dataset_id not in plan.datasets:
        known = ", ".join(sorted(plan.datasets)) or "none"
        raise LakelineError(
            f"dataset '{dataset_id}' is not an enabled dataset in the control table "
            f"(known: {known})"
        )
    return plan.datasets[dataset_id]


def plan_json(plan: Plan) -> str:
    return json.dumps(sorted(plan.datasets))
