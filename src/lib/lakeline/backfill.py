"""Backfill and replay: rebuild a dataset's silver (and gold) from bronze, never the source.

Bronze is append-only and keeps every row with its ingestion run and time, so silver can
always be rebuilt from it:

* **everything**: silver, its quarantine rows and its tombstones are emptied (a Delta
  DELETE, so the previous state stays reachable by time travel), the silver checkpoint is
  placed at bronze's end and all of bronze is applied as one batch (which gives what the
  batches one by one gave: the latest change per key wins, SCD2 timelines are rebuilt
  whole). A backfill that fails part way is simply run again;
* **a range** — bronze rows ingested in ``[since, until)`` and/or by the given bronze
  runs —: their quarantine rows are removed and the rows are applied again through the
  same code as a streaming batch. Applying is idempotent and ordered by sequence, so
  rows newer in silver stay. A dataset without a sequence has nothing to order replayed
  rows against newer ones, so its range always runs to the end of bronze.

Gold tables are then rebuilt from silver (they are full recomputes).
"""

from __future__ import annotations

import time
from datetime import datetime

from pyspark.sql import functions as F

from lakeline import cdc, merges, silver
from lakeline.bronze import bronze_table
from lakeline.environment import Environment
from lakeline.errors import LakelineError
from lakeline.hdfs import delete_folder
from lakeline.metadata import Dataset
from lakeline.quality import RuleSet
from lakeline.runlog import StepResult
from lakeline.streams import run_available_now


def _has_sequence(dataset: Dataset) -> bool:
    return bool(dataset.sequence_column or (dataset.cdc and dataset.cdc.sequence_by))


def rebuild_silver(
    spark,
    env: Environment,
    dataset: Dataset,
    run_id: str,
    result: StepResult,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    runs: list[str] | None = None,
) -> None:
    """Rebuild ``dataset``'s silver from bronze: all of it, or the rows of a range."""
    if not env.exists(spark, "bronze", dataset.id):
        raise LakelineError(f"dataset '{dataset.id}': no bronze table to backfill from")
    silver.ensure_tables(spark, env, dataset)
    whole = since is None and until is None and not runs
    result.details["backfill"] = "all" if whole else "range"
    if whole:
        for table in (silver.silver_table(env, dataset), silver.quarantine_table(env, dataset)):
            spark.sql(f"DELETE FROM {table}")
        if env.exists(spark, "ops", f"{dataset.id}__tombstones"):
            spark.sql(f"DELETE FROM {cdc.tombstone_table(env, dataset)}")
        # A new silver checkpoint placed at bronze's end (batches that do nothing read no
        # data), then all of bronze applied as one batch below: later runs go on from here.
        checkpoint = env.checkpoint(dataset.id, "silver")
        delete_folder(spark, checkpoint)
        run_available_now(
            spark.readStream.format("delta").table(bronze_table(env, dataset)),
            lambda batch, batch_id: None,
            checkpoint,
            f"dataset '{dataset.id}', backfill",
        )
    if until is not None and not _has_sequence(dataset):
        raise LakelineError(
            f"dataset '{dataset.id}' has no sequence, so replayed rows cannot be ordered "
            "against newer ones: backfill a range without 'until' (it runs to the end of bronze)"
        )
    rows = spark.table(bronze_table(env, dataset))
    if since is not None:
        rows = rows.where(F.col("_ingested_at") >= F.lit(since))
    if until is not None:
        rows = rows.where(F.col("_ingested_at") < F.lit(until))
    if runs:
        rows = rows.where(F.col("_run_id").isin(*runs))
    times = rows.select(F.col("_ingested_at").alias("ingested_at")).distinct()
    # The quarantined rows of the batches being rebuilt go; the rebuild quarantines again.
    merges.delete_matching(
        silver.quarantine_table(env, dataset), times, "t.ingested_at = s.ingested_at"
    )
    apply = cdc.process_batch if cdc.handles(dataset) else silver.process_batch
    report: dict = {}
    # A batch id of its own, so the quarantine's replay marker never matches a stream's.
    batch_id = -int(time.time() * 1000)
    counts = apply(spark, env, dataset, rows, batch_id, run_id, RuleSet.of(dataset), report)
    result.rows_read = counts["read"]
    result.rows_written = counts.get("inserted", 0) + counts.get("updated", 0)
    result.details.update(counts)


def rebuild_gold(spark, env: Environment, result: StepResult) -> list[str]:
    """Rebuild every gold table of the control table's plan, in dependency order."""
    from lakeline import control, gold

    plan = control.load_plan(spark, env)
    for table in plan.gold:
        gold.build(spark, env, table, result)
    result.details["gold"] = [t.name for t in plan.gold]
    return [t.name for t in plan.gold]
