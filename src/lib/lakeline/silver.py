"""Silver: typed, checked, deduplicated and merged.

Bronze is read as a Delta stream (checkpoint + available-now trigger), so each bronze row
reaches silver once. Each micro-batch is

1. cast to the declared types (a value that does not fit is a reason, never a silent null),
2. checked (null key, missing required value, cast failure; the quality engine plugs in
   at ``row_checks``) — failing rows go to the dataset's quarantine table with reasons,
3. reduced to one row per key, the latest by the sequence column,
4. MERGEd into silver: a key's row is never replaced by an older sequence, so replaying a
   batch changes nothing.

Every row read is accounted for: rows read = rows merged + quarantined + duplicates
dropped, checked on every batch.
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline.datatypes import parse_type
from lakeline.environment import Environment
from lakeline.errors import ReconciliationError
from lakeline.identifiers import quote
from lakeline.metadata import Column, Dataset
from lakeline.runlog import StepResult
from lakeline.streams import run_available_now

REASONS = "_reasons"
LINEAGE = ("_source_file", "_ingested_at")
QUARANTINE_MARKER = "lakeline"


def silver_table(env: Environment, dataset: Dataset) -> str:
    return env.table("silver", dataset.id)


def quarantine_table(env: Environment, dataset: Dataset) -> str:
    return env.table("quarantine", dataset.id)


def silver_schema(dataset: Dataset) -> T.StructType:
    fields = [T.StructField(c.name, parse_type(c.type), True) for c in dataset.columns]
    fields += [
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_ingested_at", T.TimestampType(), True),
    ]
    return T.StructType(fields)


QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("record", T.StringType(), True),
        T.StructField("reasons", T.ArrayType(T.StringType()), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("ingested_at", T.TimestampType(), True),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)


def ensure_tables(spark, env: Environment, dataset: Dataset) -> None:
    """Create the silver and quarantine tables if they do not exist yet."""
    for schema_name, schema in (
        ("silver", silver_schema(dataset)),
        ("quarantine", QUARANTINE_SCHEMA),
    ):
        if not env.exists(spark, schema_name, dataset.id):
            spark.createDataFrame([], schema).write.format("delta").mode("ignore").saveAsTable(
                env.table(schema_name, dataset.id)
            )


def _typed(column: Column) -> F.Column:
    """The declared type of a raw column; null when the value does not fit."""
    raw = F.col(quote(column.source_name))
    kind = parse_type(column.type)
    if column.format and isinstance(kind, T.DateType | T.TimestampType):
        parsed = F.try_to_timestamp(raw.cast("string"), F.lit(column.format))
        return parsed.cast(kind)
    if isinstance(kind, T.StringType):
        return raw.cast(kind)
    # try_cast: null instead of an error (or a silent wrap) for values that do not fit.
    return F.expr(f"try_cast({quote(column.source_name)} AS {kind.simpleString()})")


def row_checks(dataset: Dataset) -> list[tuple[F.Column, str]]:
    """(failing condition, reason) pairs evaluated on each raw+typed row.

    The seam where the quality engine adds its row-level rules.
    """
    checks = []
    for column in dataset.columns:
        raw = F.col(quote(column.source_name))
        typed = F.col(quote(f"__typed_{column.name}"))
        if column.name in dataset.primary_key:
            checks.append((raw.isNull(), f"primary key column '{column.name}' is null"))
        elif not column.nullable:
            checks.append((raw.isNull(), f"required column '{column.name}' is null"))
        checks.append(
            (
                raw.isNotNull() & typed.isNull(),
                f"column '{column.name}': value does not fit type {column.type}",
            )
        )
    return checks


def classify(frame: DataFrame, dataset: Dataset) -> DataFrame:
    """Add typed columns and the array of reasons each row fails (empty when it passes)."""
    typed = frame.select("*", *[_typed(c).alias(f"__typed_{c.name}") for c in dataset.columns])
    reasons = [F.when(cond, F.lit(reason)) for cond, reason in row_checks(dataset)]
    return typed.withColumn(REASONS, F.filter(F.array(*reasons), lambda r: r.isNotNull()))


def latest_per_key(good: DataFrame, dataset: Dataset) -> DataFrame:
    """One row per primary key: the latest by sequence, then by ingestion time and file."""
    order = []
    if dataset.sequence_column:
        order.append(F.col(quote(dataset.sequence_column)).desc_nulls_last())
    order += [F.col("_ingested_at").desc(), F.col("_source_file").desc()]
    window = Window.partitionBy(*[quote(k) for k in dataset.primary_key]).orderBy(*order)
    return good.withColumn("__rank", F.row_number().over(window)).where("__rank = 1").drop("__rank")


def _merge(spark, env: Environment, dataset: Dataset, latest: DataFrame) -> dict:
    from delta.tables import DeltaTable

    target = DeltaTable.forName(spark, silver_table(env, dataset))
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in dataset.primary_key)
    newer = None
    if dataset.sequence_column:
        seq = quote(dataset.sequence_column)
        newer = f"s.{seq} >= t.{seq} OR t.{seq} IS NULL"
    (
        target.alias("t")
        .merge(latest.alias("s"), on)
        .whenMatchedUpdateAll(condition=newer)
        .whenNotMatchedInsertAll()
        .execute()
    )
    metrics = target.history(1).select("operation", "operationMetrics").first()
    m = metrics.operationMetrics
    return {
        "source": int(m.get("numSourceRows", 0)),
        "inserted": int(m.get("numTargetRowsInserted", 0)),
        "updated": int(m.get("numTargetRowsUpdated", 0)),
    }


def process_batch(
    spark, env: Environment, dataset: Dataset, batch: DataFrame, batch_id: int, run_id: str
) -> dict:
    """Quarantine, deduplicate and merge one batch of bronze rows; returns its counts."""
    classified = classify(batch, dataset).persist()
    try:
        total, bad = classified.agg(
            F.count(F.lit(1)), F.count(F.when(F.size(REASONS) > 0, 1))
        ).first()
        if total == 0:
            return {"read": 0, "quarantined": 0, "duplicates": 0, "merged": 0}
        source_columns = [quote(c) for c in batch.columns if not c.startswith("_")]
        if bad:
            rejects = classified.where(F.size(REASONS) > 0).select(
                F.to_json(F.struct(*source_columns)).alias("record"),
                F.col(REASONS).alias("reasons"),
                F.lit(run_id).alias("run_id"),
                F.col("_source_file").alias("source_file"),
                F.col("_ingested_at").alias("ingested_at"),
                F.current_timestamp().alias("quarantined_at"),
            )
            marker = json.dumps({QUARANTINE_MARKER: {"batch": batch_id}})
            quarantine = quarantine_table(env, dataset)
            if not _already_written(spark, quarantine, marker):
                rejects.write.format("delta").mode("append").option(
                    "userMetadata", marker
                ).saveAsTable(quarantine)
        good = classified.where(F.size(REASONS) == 0).select(
            *[F.col(quote(f"__typed_{c.name}")).alias(c.name) for c in dataset.columns],
            *LINEAGE,
        )
        latest = latest_per_key(good, dataset)
        merged = _merge(spark, env, dataset, latest)
        counts = {
            "read": total,
            "quarantined": bad,
            "duplicates": total - bad - merged["source"],
            "merged": merged["source"],
            "inserted": merged["inserted"],
            "updated": merged["updated"],
            "stale": merged["source"] - merged["inserted"] - merged["updated"],
        }
        if counts["duplicates"] < 0:
            raise ReconciliationError(
                f"dataset '{dataset.id}' batch {batch_id}: {total} rows read but "
                f"{merged['source']} merged and {bad} quarantined"
            )
        return counts
    finally:
        classified.unpersist()


def _already_written(spark, table: str, marker: str) -> bool:
    rows = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 5").select("userMetadata").collect()
    return any(r[0] == marker for r in rows)


def transform(spark, env: Environment, dataset: Dataset, run_id: str, result: StepResult) -> None:
    """Bring silver up to date with everything in bronze not yet processed."""
    from lakeline.bronze import bronze_table

    ensure_tables(spark, env, dataset)
    source = bronze_table(env, dataset)
    if not env.exists(spark, "bronze", dataset.id):
        result.details["note"] = "no bronze table yet"
        return
    totals = {
        "read": 0,
        "quarantined": 0,
        "duplicates": 0,
        "merged": 0,
        "inserted": 0,
        "updated": 0,
        "stale": 0,
    }

    def each_batch(batch: DataFrame, batch_id: int) -> None:
        counts = process_batch(spark, env, dataset, batch, batch_id, run_id)
        for key, value in counts.items():
            totals[key] += value

    run_available_now(
        spark.readStream.format("delta").table(source),
        each_batch,
        env.checkpoint(dataset.id, "silver"),
        f"dataset '{dataset.id}', silver",
    )
    result.rows_read = totals["read"]
    result.rows_written = totals["inserted"] + totals["updated"]
    result.details.update(totals)
    if totals["read"] != totals["merged"] + totals["quarantined"] + totals["duplicates"]:
        raise ReconciliationError(f"dataset '{dataset.id}': counts do not reconcile: {totals}")
