"""Bronze: append-only, lineage on every row, each file exactly once, watermarks."""

import os
import shutil

import pytest
from pyspark.sql import functions as F

from lakeline import bronze, state
from lakeline.errors import DataError
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult

ORDERS = {
    "id": "orders",
    "owner": "team",
    "source": {"format": "csv", "path": "shop/orders"},
    "load": {"type": "incremental", "watermark_column": "updated_at"},
    "columns": [
        {"name": "order_id", "type": "bigint"},
        {"name": "amount", "type": "decimal(12,2)"},
        {"name": "updated_at", "type": "timestamp"},
    ],
    "primary_key": ["order_id"],
    "sequence_column": "updated_at",
}


def land(env, name: str, text: str, folder: str = "shop/orders"):
    path = env.source_path(folder)
    import os

    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "w") as f:
        f.write(text)
    return os.path.join(path, name)


def ingest(spark, env, dataset, run_id="r1"):
    state.ensure_state_table(spark, env)
    result = StepResult(dataset.id, "bronze")
    bronze.ingest(spark, env, dataset, run_id, result)
    return result


def test_rows_land_as_is_with_lineage(spark, env):
    dataset = Dataset.model_validate(ORDERS)
    land(env, "a.csv", "order_id,amount,updated_at\n1,9.99,2024-01-01T00:00:00\n2,oops,\n")
    result = ingest(spark, env, dataset)
    assert result.rows_written == 2
    table = spark.table(bronze.bronze_table(env, dataset))
    assert table.columns == [
        "order_id",
        "amount",
        "updated_at",
        "_run_id",
        "_source_file",
        "_ingested_at",
    ]
    rows = {r.order_id: r for r in table.collect()}
    assert rows["2"].amount == "oops"  # bronze keeps what will fail later checks
    assert rows["1"]._run_id == "r1" and rows["1"]._source_file.endswith("/shop/orders/a.csv")
    assert rows["1"]._ingested_at is not None


def test_each_file_is_ingested_exactly_once(spark, env):
    dataset = Dataset.model_validate(ORDERS)
    first = land(env, "a.csv", "order_id,amount,updated_at\n1,1.00,2024-01-01T00:00:00\n")
    assert ingest(spark, env, dataset, "r1").rows_written == 1
    assert ingest(spark, env, dataset, "r2").rows_written == 0  # a repeated run
    shutil.copy(first, first + ".tmp")  # the same file listed again (rewritten in place)
    shutil.move(first + ".tmp", first)
    assert ingest(spark, env, dataset, "r3").rows_written == 0
    land(env, "b.csv", "order_id,amount,updated_at\n2,2.00,2024-01-02T00:00:00\n")
    result = ingest(spark, env, dataset, "r4")
    assert result.rows_written == 1 and result.details["files"][0].endswith("b.csv")
    assert spark.table(bronze.bronze_table(env, dataset)).count() == 2
    files = state.get(spark, env, "orders", state.FILE)
    assert sorted(f.rsplit("/", 1)[1] for f in files) == ["a.csv", "b.csv"]
    assert state.watermark(spark, env, "orders") == "2024-01-02 00:00:00"


def test_only_a_batch_the_checkpoint_left_uncommitted_is_looked_for_in_bronze(spark, env):
    from pathlib import Path

    from lakeline.streams import replayable_batches

    dataset = Dataset.model_validate(ORDERS)
    checkpoint = env.checkpoint(dataset.id, "bronze")
    assert replayable_batches(spark, checkpoint) == range(0)  # no checkpoint yet
    land(env, "a.csv", "order_id,amount,updated_at\n1,1.00,2024-01-01T00:00:00\n")
    ingest(spark, env, dataset, "r1")
    land(env, "b.csv", "order_id,amount,updated_at\n2,2.00,2024-01-02T00:00:00\n")
    ingest(spark, env, dataset, "r2")
    assert not replayable_batches(spark, checkpoint)  # every planned batch committed
    # A run that stopped after appending batch 1 to bronze, before its checkpoint commit.
    for name in ("1", ".1.crc"):
        (Path(checkpoint) / "commits" / name).unlink(missing_ok=True)
    assert replayable_batches(spark, checkpoint) == range(1, 2)
    land(env, "c.csv", "order_id,amount,updated_at\n3,3.00,2024-01-03T00:00:00\n")
    ingest(spark, env, dataset, "r3")  # batch 1 again (found in bronze), then batch 2
    ids = sorted(r.order_id for r in spark.table(bronze.bronze_table(env, dataset)).collect())
    assert ids == ["1", "2", "3"]
    assert not replayable_batches(spark, checkpoint)


def test_watermark_only_moves_forward(spark, env):
    dataset = Dataset.model_validate(ORDERS)
    land(env, "a.csv", "order_id,amount,updated_at\n1,1.00,2024-03-01T00:00:00\n")
    ingest(spark, env, dataset, "r1")
    land(env, "late.csv", "order_id,amount,updated_at\n1,0.50,2024-02-01T00:00:00\n")
    result = ingest(spark, env, dataset, "r2")
    assert result.rows_written == 1  # a late file is still captured in bronze
    assert state.watermark(spark, env, "orders") == "2024-03-01 00:00:00"


def test_a_source_without_a_declared_column_fails_clearly(spark, env):
    dataset = Dataset.model_validate(ORDERS)
    land(env, "a.csv", "order_id,total,updated_at\n1,1.00,2024-01-01T00:00:00\n")
    with pytest.raises(DataError, match=r"dataset 'orders'.*no column 'amount'"):
        ingest(spark, env, dataset)


def _delta_dataset(env):
    spec = dict(ORDERS, source={"format": "delta", "table": "raw.erp_orders"})
    return Dataset.model_validate(spec)


def _erp(spark, env, rows, mode="append"):
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {env.schema('raw')}")
    frame = spark.createDataFrame(rows, "order_id BIGINT, amount DECIMAL(12,2), updated_at STRING")
    frame = frame.withColumn("updated_at", F.col("updated_at").cast("timestamp"))
    frame.write.format("delta").mode(mode).saveAsTable(env.table("raw", "erp_orders"))


def test_incremental_delta_source_reads_only_past_the_watermark(spark, env):
    from decimal import Decimal

    dataset = _delta_dataset(env)
    _erp(spark, env, [(1, Decimal("1.00"), "2024-01-01 00:00:00")])
    assert ingest(spark, env, dataset, "r1").rows_written == 1
    _erp(spark, env, [(2, Decimal("2.00"), "2024-01-02 00:00:00")])
    result = ingest(spark, env, dataset, "r2")
    assert result.rows_written == 1 and result.details["watermark"] == "2024-01-02 00:00:00"
    assert ingest(spark, env, dataset, "r3").rows_written == 0
    ids = sorted(r.order_id for r in spark.table(bronze.bronze_table(env, dataset)).collect())
    assert ids == [1, 2]


def test_incremental_delta_source_recovers_when_state_was_lost_after_the_append(spark, env):
    from decimal import Decimal

    dataset = _delta_dataset(env)
    _erp(spark, env, [(1, Decimal("1.00"), "2024-01-01 00:00:00")])
    ingest(spark, env, dataset, "r1")
    # A crash between the bronze append and the state update: the state never saw it.
    spark.sql(f"DELETE FROM {env.table('ops', 'state')} WHERE dataset = 'orders'")
    _erp(spark, env, [(2, Decimal("2.00"), "2024-01-02 00:00:00")])
    assert ingest(spark, env, dataset, "r2").rows_written == 1
    ids = sorted(r.order_id for r in spark.table(bronze.bronze_table(env, dataset)).collect())
    assert ids == [1, 2]


def test_full_delta_source_appends_a_snapshot_each_run(spark, env):
    from decimal import Decimal

    spec = dict(
        ORDERS, source={"format": "delta", "table": "raw.erp_orders"}, load={"type": "full"}
    )
    dataset = Dataset.model_validate(spec)
    _erp(spark, env, [(1, Decimal("1.00"), "2024-01-01 00:00:00")])
    ingest(spark, env, dataset, "r1")
    ingest(spark, env, dataset, "r2")
    runs = spark.table(bronze.bronze_table(env, dataset)).groupBy("_run_id").count().collect()
    assert sorted((r._run_id, r["count"]) for r in runs) == [("r1", 1), ("r2", 1)]


def test_a_late_file_with_an_old_timestamp_is_not_skipped(spark, env):
    """Spark's file source drops files 7 days older than the newest seen; we must not."""
    import os
    import time

    dataset = Dataset.model_validate(ORDERS)
    land(env, "new.csv", "order_id,amount,updated_at\n1,1.00,2024-03-01T00:00:00\n")
    assert ingest(spark, env, dataset, "r1").rows_written == 1
    old = land(env, "old.csv", "order_id,amount,updated_at\n2,2.00,2024-01-01T00:00:00\n")
    month_ago = time.time() - 30 * 24 * 3600
    os.utime(old, (month_ago, month_ago))
    assert ingest(spark, env, dataset, "r2").rows_written == 1


def _bronze_writes(spark, env, dataset) -> list[int]:
    """Rows of each append to bronze, oldest first."""
    history = spark.sql(f"DESCRIBE HISTORY {bronze.bronze_table(env, dataset)}")
    writes = history.where("operation = 'WRITE'").orderBy("version").collect()
    return [int(w.operationMetrics["numOutputRows"]) for w in writes]


def test_each_micro_batch_writes_the_files_its_checkpoint_planned_read_as_a_batch(
    spark, env, monkeypatch
):
    from lakeline.streams import planned_files

    plans = []
    real_append = bronze._append

    def append(frame, target, marker, merge_schema=False):
        plans.append(frame._jdf.queryExecution().executedPlan().toString())
        return real_append(frame, target, marker, merge_schema)

    monkeypatch.setattr(bronze, "_append", append)
    dataset = Dataset.model_validate(
        dict(ORDERS, source={**ORDERS["source"], "options": {"maxFilesPerTrigger": "1"}})
    )
    sizes = {"a.csv": 1, "b b[1].csv": 2, "c.csv": 3}  # a space and a glob character
    for n, (name, count) in enumerate(sizes.items()):
        rows = "".join(f"{n}{i},1.00,2024-01-0{n + 1}T00:00:00\n" for i in range(count))
        land(env, name, "order_id,amount,updated_at\n" + rows)
        os.utime(env.source_path(f"shop/orders/{name}"), (1_700_000_000 + n,) * 2)
    # One file per micro-batch, and the source log compacted every second batch, so batch 1
    # is found in "1.compact" beside the entry of batch 0.
    spark.conf.set("spark.sql.streaming.fileSource.log.compactInterval", "2")
    try:
        result = ingest(spark, env, dataset)
    finally:
        spark.conf.unset("spark.sql.streaming.fileSource.log.compactInterval")
    checkpoint = env.checkpoint(dataset.id, "bronze")
    assert os.path.exists(os.path.join(checkpoint, "sources", "0", "1.compact"))
    planned = [planned_files(spark, checkpoint, b) for b in range(3)]
    assert [[_name(f) for f in files] for files in planned] == [[n] for n in sizes]
    # Each batch wrote its own file's rows, once, and nothing of another batch's file.
    assert _bronze_writes(spark, env, dataset) == list(sizes.values())
    assert result.rows_written == 6
    # Files are named as the stream names them (_metadata.file_path, URL-encoded).
    counts = spark.table(bronze.bronze_table(env, dataset)).groupBy("_source_file").count()
    assert {_name(r._source_file): r["count"] for r in counts.collect()} == sizes
    recorded = state.get(spark, env, "orders", state.FILE)
    assert sorted(_name(f) for f in recorded) == sorted(sizes)
    # The rows were read from the files, not from the micro-batch Spark handed over (a scan
    # of rows the stream already produced, which copies every one of them once more).
    assert len(plans) == 3
    assert all("ExistingRDD" not in p and "Scan csv" in p for p in plans), plans


def _name(uri: str) -> str:
    from urllib.parse import unquote

    return unquote(uri.rsplit("/", 1)[1])


def test_a_partitioned_source_keeps_its_partition_columns(spark, env):
    dataset = Dataset.model_validate(ORDERS)
    land(
        env,
        "a.csv",
        "order_id,amount,updated_at\n1,1.00,2024-01-01T00:00:00\n",
        "shop/orders/region=eu",
    )
    land(
        env,
        "b.csv",
        "order_id,amount,updated_at\n2,2.00,2024-01-02T00:00:00\n",
        "shop/orders/region=us",
    )
    assert ingest(spark, env, dataset).rows_written == 2
    rows = spark.table(bronze.bronze_table(env, dataset)).select("order_id", "region").collect()
    assert sorted((r.order_id, r.region) for r in rows) == [("1", "eu"), ("2", "us")]


def test_without_a_watermark_a_batch_s_planned_files_are_recorded_beside_its_append(
    spark, env, monkeypatch
):
    import threading

    threads = []
    real_record = state.record

    def record(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(state, "record", record)
    dataset = Dataset.model_validate({k: v for k, v in ORDERS.items() if k != "load"})
    header = "order_id,amount,updated_at\n"
    land(env, "a.csv", header + "1,1.00,2024-01-01T00:00:00\n")
    land(env, "b b[1].csv", header + "2,2.00,2024-01-02T00:00:00\n3,3.00,2024-01-02T00:00:00\n")
    land(env, "empty.csv", header)
    result = ingest(spark, env, dataset)
    assert result.rows_written == 3
    assert len(threads) == 1 and threads[0].startswith("lakeline-state"), threads
    # Spelled exactly as bronze's _source_file (URL-encoded), so the state and bronze agree;
    # the file with no rows was planned and read, and is listed as processed too.
    table = spark.table(bronze.bronze_table(env, dataset))
    in_bronze = {r._source_file for r in table.select("_source_file").distinct().collect()}
    recorded = set(state.get(spark, env, "orders", state.FILE))
    assert in_bronze < recorded
    assert [_name(f) for f in recorded - in_bronze] == ["empty.csv"]
    assert sorted(_name(f) for f in result.details["files"]) == ["a.csv", "b b[1].csv", "empty.csv"]
    assert ingest(spark, env, dataset, "r2").rows_written == 0  # a rerun: nothing again
    entries = spark.table(env.table("ops", state.STATE_TABLE)).where("kind = 'file'")
    assert entries.count() == 3
