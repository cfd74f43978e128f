"""Plans see the tables' real sizes, and a foreachBatch plans adaptively.

A Delta table created by writing a DataFrame gets its size at that moment recorded in the
catalog, and Spark's planner trusts that figure over Delta's own for good: a silver table
created empty was always "a few hundred bytes", so every MERGE into it and every join
with it broadcast the whole table from the driver. lakeline creates its tables empty
(``Environment.create``), and their estimate follows the data.
"""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from lakeline import bronze, cdc, quality, schema_evolution, silver, streams
from lakeline.metadata import Dataset

ORDERS = Dataset.model_validate(
    {
        "id": "orders",
        "owner": "team",
        "source": {"format": "csv", "path": "shop/orders"},
        "load": {"type": "cdc"},
        "cdc": {"operation_column": "op", "sequence_by": ["updated_at"]},
        "columns": [
            {"name": "order_id", "type": "bigint", "nullable": False},
            {"name": "note", "type": "string"},
            {"name": "updated_at", "type": "timestamp", "nullable": False},
        ],
        "primary_key": ["order_id"],
    }
)


def _estimate(spark, table: str) -> int:
    return int(spark.table(table)._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())


def _size(spark, table: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL {table}").select("sizeInBytes").first()[0])


def _silver(spark, env):
    silver.ensure_tables(spark, env, ORDERS)
    return silver.silver_table(env, ORDERS)


def _quarantine(spark, env):
    silver.ensure_tables(spark, env, ORDERS)
    return silver.quarantine_table(env, ORDERS)


def _bronze(spark, env):
    schema = spark.createDataFrame([], "order_id string, note string, updated_at string").schema
    bronze._ensure_bronze(spark, env, ORDERS, schema)
    return bronze.bronze_table(env, ORDERS)


def _metrics(spark, env):
    return quality.ensure_metrics_table(spark, env)


def _tombstones(spark, env):
    latest = spark.createDataFrame(
        [(1, "2024-01-01 00:00:00", cdc.DELETE)],
        f"order_id bigint, updated_at string, {cdc.OP} string",
    ).withColumn("updated_at", F.col("updated_at").cast("timestamp"))
    cdc._record_tombstones(spark, env, ORDERS, latest)
    return cdc.tombstone_table(env, ORDERS)


def _history(spark, env):
    env.create(spark, "ops", schema_evolution.HISTORY_TABLE, schema_evolution._HISTORY)
    return schema_evolution.history_table(env)


def _value(kind: str) -> F.Column:
    """A value of the type ``kind`` per row of ``spark.range``, different in every row."""
    text = F.sha2(F.col("id").cast("string"), 256)
    if kind == "string":
        return text
    if kind == "array":
        return F.array(text)
    if kind == "boolean":
        return F.col("id") % 2 == 0
    if kind == "timestamp":
        return F.timestamp_seconds("id")
    return F.col("id")


@pytest.mark.parametrize(
    "create",
    [_silver, _quarantine, _bronze, _metrics, _tombstones, _history],
    ids=lambda f: f.__name__[1:],
)
def test_a_lakeline_table_is_planned_at_its_real_size(spark, env, create):
    """Grown well past its first size, the table's plan estimate is its size now. With the
    empty-DataFrame creates this was the empty table's few hundred bytes forever."""
    table = create(spark, env)
    first = _estimate(spark, table)
    rows = spark.range(20_000).select(
        *[
            _value(f.dataType.typeName()).cast(f.dataType).alias(f.name)
            for f in spark.table(table).schema
        ]
    )
    rows.write.format("delta").mode("append").saveAsTable(table)
    size = _size(spark, table)
    assert size > 10 * max(first, 1)
    assert _estimate(spark, table) == size


def test_the_batches_of_a_stream_are_planned_adaptively(spark, env, tmp_path):
    """A stream's session has adaptive execution off; each foreachBatch gets the session's
    own setting back, so its MERGE picks its broadcast side from what it reads."""
    table = env.table("bronze", "adaptive")
    spark.range(10).write.format("delta").saveAsTable(table)
    plans = []

    def each_batch(session, batch, batch_id, out):
        joined = batch.join(batch.withColumnRenamed("id", "other"), F.col("id") == F.col("other"))
        joined.collect()
        plans.append(joined._jdf.queryExecution().executedPlan().toString())

    streams.run_batches(
        spark,
        env,
        spark.readStream.format("delta").table(table),
        each_batch,
        lambda out: None,
        str(tmp_path / "checkpoint"),
        "adaptive",
        "run-1",
    )
    assert len(plans) == 1
    assert plans[0].startswith("AdaptiveSparkPlan")
    assert spark.conf.get("spark.sql.adaptive.enabled") == "true"


class _FixedConf:
    """The configuration of a compute that fixes its Spark settings (Databricks serverless
    refuses most of them); the one thing here that cannot run on a local session."""

    def get(self, key, default=None):
        return "false"

    def set(self, key, value):
        raise RuntimeError(f"[CANNOT_MODIFY_CONFIG] Cannot modify the value of the config: {key}")


class _Batch:
    def __init__(self, conf):
        self.sparkSession = type("Session", (), {"conf": conf})()


def test_a_batch_runs_as_planned_where_the_setting_is_refused():
    ran = []
    streams._adaptive(lambda batch, batch_id: ran.append(batch_id), "true")(_Batch(_FixedConf()), 7)
    assert ran == [7]
