"""Per-dataset state beside the control table: watermarks and processed source files.

Rows are keyed by (dataset, kind, key) and written with MERGE, so writing the same state
twice (a replayed batch) changes nothing; files that cannot be there yet are appended.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import merges
from lakeline.environment import Environment

STATE_TABLE = "state"
WATERMARK = "watermark"
FILE = "file"

_SCHEMA = T.StructType(
    [
        T.StructField("dataset", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),
        T.StructField("key", T.StringType(), False),
        T.StructField("value", T.StringType(), True),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("updated_at", T.TimestampType(), False),
    ]
)


def ensure_state_table(spark, env: Environment) -> str:
    return env.create(
        spark,
        "ops",
        STATE_TABLE,
        "(dataset STRING NOT NULL, kind STRING NOT NULL, "
        "key STRING NOT NULL, value STRING, run_id STRING NOT NULL, "
        "updated_at TIMESTAMP NOT NULL) USING DELTA PARTITIONED BY (dataset) "
        "COMMENT 'lakeline state: watermarks and processed source files per dataset'",
    )


def record(
    spark,
    env: Environment,
    dataset: str,
    run_id: str,
    *,
    files: list[str] | tuple[str, ...] = (),
    watermark: str | None = None,
    fresh: bool = False,
) -> None:
    """Upsert processed files and the watermark in one MERGE; unchanged entries stay as they are.

    ``fresh`` says the files cannot be in the table yet (a micro-batch's first attempt):
    with no watermark, they are then appended, which is cheaper than any MERGE.
    """
    entries = [(FILE, f, run_id) for f in sorted(files)]
    if watermark is not None:
        entries.append((WATERMARK, WATERMARK, watermark))
    if not entries:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(dataset, kind, key, value, run_id, now) for kind, key, value in entries]
    updates = spark.createDataFrame(rows, _SCHEMA)
    if fresh and watermark is None:
        updates.write.insertInto(env.table("ops", STATE_TABLE))
        return
    # The literal partition predicate keeps concurrent runs of other datasets (for-each
    # iterations) out of this MERGE's conflict check.
    on = "t.dataset = :dataset AND t.dataset = s.dataset AND t.kind = s.kind AND t.key = s.key"
    # A file entry never changes, so files alone make an insert-only MERGE, which Delta runs
    # as one anti-join instead of a join to find the rows and another to write them.
    clauses = ["WHEN NOT MATCHED THEN INSERT *"]
    if watermark is not None:
        clauses.insert(
            0, "WHEN MATCHED AND t.kind <> 'file' AND NOT (t.value <=> s.value) THEN UPDATE SET *"
        )
    merges.merge(env.table("ops", STATE_TABLE), updates, on, clauses, args={"dataset": dataset})


def get(spark, env: Environment, dataset: str, kind: str) -> dict[str, str | None]:
    rows = (
        spark.table(env.table("ops", STATE_TABLE))
        .where((F.col("dataset") == dataset) & (F.col("kind") == kind))
        .select("key", "value")
        .collect()
    )
    return {r.key: r.value for r in rows}


def watermark(spark, env: Environment, dataset: str) -> str | None:
    return get(spark, env, dataset, WATERMARK).get(WATERMARK)
