"""Silver: typed, quarantined with reasons, deduplicated by key and sequence, merged."""

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from lakeline import silver
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult

ORDERS = Dataset.model_validate(
    {
        "id": "orders",
        "owner": "team",
        "source": {"format": "csv", "path": "shop/orders"},
        "columns": [
            {"name": "order_id", "type": "bigint", "nullable": False},
            {"name": "amount", "type": "decimal(12,2)"},
            {"name": "placed_on", "type": "date", "source": "day", "format": "dd/MM/yyyy"},
            {"name": "updated_at", "type": "timestamp", "nullable": False},
        ],
        "primary_key": ["order_id"],
        "sequence_column": "updated_at",
    }
)
BRONZE = T.StructType(
    [T.StructField(n, T.StringType()) for n in ("order_id", "amount", "day", "updated_at")]
    + [
        T.StructField("_run_id", T.StringType()),
        T.StructField("_source_file", T.StringType()),
        T.StructField("_ingested_at", T.TimestampType()),
    ]
)
T0 = datetime(2024, 3, 1, 12, 0)


def bronze_rows(spark, rows):
    return spark.createDataFrame([(*r, "r", "f.csv", T0) for r in rows], BRONZE)


def test_classify_gives_every_failing_row_all_its_reasons(spark):
    frame = bronze_rows(
        spark,
        [
            ("1", "9.99", "01/03/2024", "2024-03-01T10:00:00"),
            (None, "1.00", "01/03/2024", "2024-03-01T10:00:00"),
            ("3", "4,99", "31/02/2024", "2024-03-01T10:00:00"),
            ("4", "123456789012.00", "01/03/2024", None),
        ],
    )
    reasons = {r.order_id: r._reasons for r in silver.classify(frame, ORDERS).collect()}
    assert reasons["1"] == []
    assert reasons[None] == ["primary key column 'order_id' is null"]
    assert reasons["3"] == [
        "column 'amount': value does not fit type decimal(12,2)",
        "column 'placed_on': value does not fit type date",
    ]
    assert reasons["4"] == [
        "column 'amount': value does not fit type decimal(12,2)",
        "required column 'updated_at' is null",
    ]


def test_latest_per_key_keeps_the_newest_sequence(spark):
    schema = "order_id BIGINT, updated_at TIMESTAMP, _source_file STRING, _ingested_at TIMESTAMP"
    rows = [
        (1, datetime(2024, 3, 1), "a", T0),
        (1, datetime(2024, 3, 3), "a", T0),
        (1, datetime(2024, 3, 2), "b", T0),
        (2, datetime(2024, 3, 1), "a", T0),
    ]
    latest = silver.latest_per_key(spark.createDataFrame(rows, schema), ORDERS)
    expected = spark.createDataFrame(
        [(1, datetime(2024, 3, 3), "a", T0), (2, datetime(2024, 3, 1), "a", T0)], schema
    )
    assert_df_equality(latest, expected, ignore_row_order=True)


def _run(spark, env, rows, run_id, batch_id):
    silver.ensure_tables(spark, env, ORDERS)
    return silver.process_batch(spark, env, ORDERS, bronze_rows(spark, rows), batch_id, run_id)


def _silver(spark, env):
    return spark.table(silver.silver_table(env, ORDERS)).drop("_source_file", "_ingested_at")


def test_batches_merge_by_key_and_sequence_and_reconcile(spark, env):
    first = _run(
        spark,
        env,
        [
            ("1", "10.00", "01/03/2024", "2024-03-01T10:00:00"),
            ("1", "11.00", "01/03/2024", "2024-03-01T11:00:00"),  # newer version, same batch
            ("2", "20.00", "02/03/2024", "2024-03-02T10:00:00"),
            ("3", "x", "02/03/2024", "2024-03-02T10:00:00"),  # malformed
        ],
        "r1",
        0,
    )
    assert first == {
        "read": 4,
        "quarantined": 1,
        "duplicates": 1,
        "merged": 2,
        "inserted": 2,
        "updated": 0,
        "stale": 0,
    }
    second = _run(
        spark,
        env,
        [
            ("1", "9.00", "01/03/2024", "2024-03-01T09:00:00"),  # late: older than silver
            ("2", "22.00", "02/03/2024", "2024-03-03T10:00:00"),  # update
            ("4", "40.00", "04/03/2024", "2024-03-04T10:00:00"),  # new
        ],
        "r2",
        1,
    )
    assert (second["inserted"], second["updated"], second["stale"]) == (1, 1, 1)
    assert second["read"] == second["merged"] + second["quarantined"] + second["duplicates"]
    expected = spark.createDataFrame(
        [
            (1, Decimal("11.00"), datetime(2024, 3, 1).date(), datetime(2024, 3, 1, 11)),
            (2, Decimal("22.00"), datetime(2024, 3, 2).date(), datetime(2024, 3, 3, 10)),
            (4, Decimal("40.00"), datetime(2024, 3, 4).date(), datetime(2024, 3, 4, 10)),
        ],
        "order_id BIGINT, amount DECIMAL(12,2), placed_on DATE, updated_at TIMESTAMP",
    )
    assert_df_equality(_silver(spark, env), expected, ignore_row_order=True, ignore_nullable=True)
    quarantined = spark.table(silver.quarantine_table(env, ORDERS)).collect()
    assert len(quarantined) == 1
    assert quarantined[0].reasons == ["column 'amount': value does not fit type decimal(12,2)"]
    assert '"amount":"x"' in quarantined[0].record and quarantined[0].run_id == "r1"


def test_replaying_a_batch_changes_nothing(spark, env):
    rows = [("1", "10.00", "01/03/2024", "2024-03-01T10:00:00"), ("2", "bad", "x", "2024-03-01")]
    _run(spark, env, rows, "r1", 0)
    before_silver = _silver(spark, env).collect()
    # The same micro-batch again (a crash before the checkpoint committed it).
    replay = _run(spark, env, rows, "r1", 0)
    assert replay["inserted"] == 0
    assert sorted(_silver(spark, env).collect()) == sorted(before_silver)
    assert spark.table(silver.quarantine_table(env, ORDERS)).count() == 1


def test_a_batch_with_every_row_quarantined_reconciles(spark, env):
    """Nothing to MERGE makes no Delta commit: its counts are zero, not the last commit's."""
    _run(spark, env, [("1", "10.00", "01/03/2024", "2024-03-01T10:00:00")], "r1", 0)
    before = spark.sql(f"DESCRIBE HISTORY {silver.silver_table(env, ORDERS)}").count()
    bad = [("2", "x", "01/03/2024", "2024-03-01T10:00:00"), (None, "1", "x", "2024-03-01")]
    counts = _run(spark, env, bad, "r2", 1)
    assert counts == {
        "read": 2,
        "quarantined": 2,
        "duplicates": 0,
        "merged": 0,
        "inserted": 0,
        "updated": 0,
        "stale": 0,
    }
    assert spark.sql(f"DESCRIBE HISTORY {silver.silver_table(env, ORDERS)}").count() == before
    assert spark.table(silver.quarantine_table(env, ORDERS)).count() == 2


def test_merge_returns_its_own_counts_and_its_commit_is_found_past_another(spark, env):
    """The SQL MERGE's counts, and its commit (for numSourceRows) even when another commit
    (maintenance: OPTIMIZE, a property change) lands right after it."""
    from lakeline import merges

    _run(spark, env, [("1", "10.00", "01/03/2024", "2024-03-01T10:00:00")], "r1", 0)
    table = silver.silver_table(env, ORDERS)
    source = bronze_rows(
        spark,
        [
            ("1", "11.00", "01/03/2024", "2024-03-01T11:00:00"),
            ("2", "20.00", "02/03/2024", "2024-03-02T10:00:00"),
        ],
    )
    typed = silver.classify(source, ORDERS).select(
        *[f"__typed_{c.name}" for c in ORDERS.columns], *silver.LINEAGE
    )
    for c in ORDERS.columns:
        typed = typed.withColumnRenamed(f"__typed_{c.name}", c.name)

    counts = merges.merge(
        table,
        typed,
        "t.order_id = s.order_id",
        ["WHEN MATCHED THEN UPDATE SET *", "WHEN NOT MATCHED THEN INSERT *"],
    )
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('lakeline.test' = 'x')")

    assert counts == {"inserted": 1, "updated": 1, "deleted": 0}
    assert (
        merges.latest_version(spark, table)
        == merges.newest_commit(spark, table, "SET TBLPROPERTIES").version
    )
    commit = merges.newest_commit(spark, table, "MERGE")
    assert commit.operationMetrics["numSourceRows"] == "2"
    assert merges.newest_commit(spark, table, "DELETE") is None


def test_transform_streams_only_new_bronze_rows(spark, env):
    from lakeline.bronze import bronze_table

    bronze_rows(spark, [("1", "1.00", "01/03/2024", "2024-03-01T10:00:00")]).write.format(
        "delta"
    ).saveAsTable(bronze_table(env, ORDERS))
    first = StepResult("orders", "silver")
    silver.transform(spark, env, ORDERS, "r1", first)
    assert (first.rows_read, first.rows_written) == (1, 1)
    again = StepResult("orders", "silver")
    silver.transform(spark, env, ORDERS, "r2", again)
    assert (again.rows_read, again.rows_written) == (0, 0)


def _bronze_in_commits(spark, env, commits: int) -> str:
    """A bronze table of orders written one row per commit (ids 1..commits); its log path."""
    from lakeline.bronze import bronze_table

    table = bronze_table(env, ORDERS)
    for i in range(1, commits + 1):
        row = (str(i), "1.00", "01/03/2024", f"2024-03-01T10:00:{i:02d}")
        bronze_rows(spark, [row]).write.format("delta").mode("append").saveAsTable(table)
    location = spark.sql(f"DESCRIBE DETAIL {table}").first().location
    return location.removeprefix("file:") + "/_delta_log"


@pytest.fixture
def bronze_streams(monkeypatch):
    """The start option of every bronze stream silver runs (the real streams still run)."""
    starts = []
    real = silver.run_batches

    def recording(spark, env, frame, *args):
        plan = frame._jdf.queryExecution().logical().toString()
        starts.append("from first commit" if "startingVersion=0" in plan else "from snapshot")
        return real(spark, env, frame, *args)

    monkeypatch.setattr(silver, "run_batches", recording)
    return starts


def _silver_ids(spark, env) -> list[int]:
    rows = spark.table(silver.silver_table(env, ORDERS)).orderBy("order_id").collect()
    return [r.order_id for r in rows]


def test_a_new_silver_stream_reads_bronze_from_its_first_commit(spark, env, bronze_streams):
    _bronze_in_commits(spark, env, 3)
    result = StepResult("orders", "silver")
    silver.transform(spark, env, ORDERS, "r1", result)
    assert (result.rows_read, result.rows_written) == (3, 3)
    assert bronze_streams == ["from first commit"]
    assert _silver_ids(spark, env) == [1, 2, 3]


def test_a_new_silver_stream_starts_from_a_snapshot_once_bronze_log_is_cleaned(
    spark, env, bronze_streams
):
    log = _bronze_in_commits(spark, env, 11)  # a checkpoint at version 10
    assert (Path(log) / "00000000000000000010.checkpoint.parquet").exists()
    for version in range(10):  # what log retention removes
        (Path(log) / f"{version:020d}.json").unlink()
    result = StepResult("orders", "silver")
    silver.transform(spark, env, ORDERS, "r1", result)
    assert bronze_streams == ["from first commit", "from snapshot"]
    assert (result.rows_read, result.rows_written) == (11, 11)
    assert _silver_ids(spark, env) == list(range(1, 12))


def test_a_silver_stream_with_a_checkpoint_goes_on_from_it(spark, env, bronze_streams):
    # A start option on a stream with a checkpoint is not just ignored: Delta still checks
    # that the version exists, and fails once log retention has removed it.
    from lakeline.bronze import bronze_table

    _bronze_in_commits(spark, env, 2)
    silver.transform(spark, env, ORDERS, "r1", StepResult("orders", "silver"))
    row = ("3", "1.00", "01/03/2024", "2024-03-01T10:00:03")
    bronze_rows(spark, [row]).write.format("delta").mode("append").saveAsTable(
        bronze_table(env, ORDERS)
    )
    result = StepResult("orders", "silver")
    silver.transform(spark, env, ORDERS, "r2", result)
    assert bronze_streams == ["from first commit", "from snapshot"]
    assert (result.rows_read, result.rows_written) == (1, 1)
    assert _silver_ids(spark, env) == [1, 2, 3]


def test_only_a_silver_table_the_step_did_not_make_is_asked_whether_it_is_empty(
    spark, env, monkeypatch
):
    from lakeline.bronze import bronze_table

    asked = []
    real = silver._is_empty

    def asking(session, table):
        asked.append(table)
        return real(session, table)

    monkeypatch.setattr(silver, "_is_empty", asking)
    table = silver.silver_table(env, ORDERS)

    def step(run_id: str, *rows) -> StepResult:
        bronze_rows(spark, list(rows)).write.format("delta").mode("append").saveAsTable(
            bronze_table(env, ORDERS)
        )
        result = StepResult("orders", "silver")
        silver.transform(spark, env, ORDERS, run_id, result)
        return result

    # Made by the step: its first batch appends without asking.
    first = step("r1", ("1", "1.00", "01/03/2024", "2024-03-01T10:00:00"))
    assert asked == []
    assert (first.rows_read, first.details["inserted"]) == (1, 1)
    # Emptied, as a backfill does, but there before the step: asked, and found empty.
    spark.sql(f"DELETE FROM {table}")
    second = step("r2", ("2", "2.00", "01/03/2024", "2024-03-01T10:00:00"))
    assert asked == [table]
    assert _silver_ids(spark, env) == [2]
    # Holding rows: asked again, and its key is updated in place, not appended twice.
    third = step("r3", ("2", "3.00", "01/03/2024", "2024-03-01T11:00:00"))
    assert asked == [table, table]
    assert (second.details["inserted"], third.details["updated"]) == (1, 1)
    assert _silver_ids(spark, env) == [2]
    assert spark.table(table).first().amount == Decimal("3.00")


@pytest.mark.parametrize("ansi", ["true", "false"])
def test_cast_failures_do_not_depend_on_ansi_mode(spark, ansi):
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", ansi)
    try:
        frame = bronze_rows(spark, [("x", "1e99", "99/99/2024", "2024-03-01T10:00:00")])
        [row] = silver.classify(frame, ORDERS).collect()
        assert len(row._reasons) == 3
    finally:
        spark.conf.set("spark.sql.ansi.enabled", previous)


@pytest.mark.parametrize("deletion_vectors", [True, False])
def test_a_merge_into_silver_marks_replaced_rows_with_deletion_vectors(
    spark, env, deletion_vectors
):
    """Silver is created with deletion vectors unless the dataset says no: a MERGE that
    changes one row then writes that row and a deletion vector, and rewrites no file."""
    dataset = ORDERS.model_copy(update={"deletion_vectors": deletion_vectors})
    silver.ensure_tables(spark, env, dataset)
    table = silver.silver_table(env, dataset)
    first = [(str(i), "1.00", "01/03/2024", "2024-03-01T10:00:00") for i in range(1, 7)]
    silver.process_batch(spark, env, dataset, bronze_rows(spark, first).coalesce(1), 0, "r1")
    change = [("2", "2.00", "01/03/2024", "2024-03-02T10:00:00")]
    counts = silver.process_batch(spark, env, dataset, bronze_rows(spark, change), 1, "r2")
    assert (counts["inserted"], counts["updated"]) == (0, 1)
    properties = {r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}
    metrics = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first().operationMetrics
    if deletion_vectors:
        assert properties["delta.enableDeletionVectors"] == "true"
        assert (metrics["numTargetDeletionVectorsAdded"], metrics["numTargetFilesRemoved"]) == (
            "1",
            "0",
        )
    else:
        assert "delta.enableDeletionVectors" not in properties
        assert metrics["numTargetFilesRemoved"] == "1"
    amounts = {r.order_id: r.amount for r in spark.table(table).collect()}
    assert amounts == {i: Decimal("2.00" if i == 2 else "1.00") for i in range(1, 7)}
