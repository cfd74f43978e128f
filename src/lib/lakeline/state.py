"""Per-dataset state beside the control table: watermarks and processed source files.

Rows are keyed by (dataset, kind, key) and written with MERGE, so writing the same state
twice (a replayed batch) changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import types as T

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
    name = env.table("ops", STATE_TABLE)
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {name} (dataset STRING NOT NULL, kind STRING NOT NULL, "
        "key STRING NOT NULL, value STRING, run_id STRING NOT NULL, "
        "updated_at TIMESTAMP NOT NULL) USING DELTA "
        "COMMENT 'lakeline state: watermarks and processed source files per dataset'"
    )
    return name


def put(
    spark, env: Environment, dataset: str, kind: str, values: dict[str, str | None], run_id: str
):
    """Upsert state entries; an entry whose value is unchanged is left as it is."""
    from delta.tables import DeltaTable

    if not values:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(dataset, kind, k, v, run_id, now) for k, v in sorted(values.items())]
    updates = spark.createDataFrame(rows, _SCHEMA)
    (
        DeltaTable.forName(spark, env.table("ops", STATE_TABLE))
        .alias("t")
        .merge(updates.alias("s"), "t.dataset = s.dataset AND t.kind = s.kind AND t.key = s.key")
        .whenMatchedUpdateAll(condition="NOT (t.value <=> s.value)")
        .whenNotMatchedInsertAll()
        .execute()
    )


def get(spark, env: Environment, dataset: str, kind: str) -> dict[str, str | None]:
    from pyspark.sql import functions as F

    rows = (
        spark.table(env.table("ops", STATE_TABLE))
        .where((F.col("dataset") == dataset) & (F.col("kind") == kind))
        .select("key", "value")
        .collect()
    )
    return {r.key: r.value for r in rows}


def watermark(spark, env: Environment, dataset: str) -> str | None:
    return get(spark, env, dataset, WATERMARK).get(WATERMARK)
