"""CDC into silver: the fixture feed as SCD1 (hard and soft deletes) and SCD2, snapshots."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakeline import bronze, silver, state
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cdc"


def customers(**overrides) -> Dataset:
    spec = yaml.safe_load((FIXTURES / "customers.yml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return Dataset.model_validate(spec)


def land(env, feed: str, batch: int, folder: str) -> None:
    target = Path(env.source_path(folder))
    target.mkdir(parents=True, exist_ok=True)
    for file in (FIXTURES / feed / f"batch_{batch}").iterdir():
        shutil.copy(file, target / file.name)


def run(spark, env, dataset: Dataset, run_id: str) -> StepResult:
    state.ensure_state_table(spark, env)
    ingested = StepResult(dataset.id, "bronze")
    bronze.ingest(spark, env, dataset, run_id, ingested)
    result = StepResult(dataset.id, "silver")
    silver.transform(spark, env, dataset, run_id, result)
    return result


def expected(spark, name: str, dataset: Dataset):
    """A hand-written expected table, typed like the silver table."""
    schema = silver.silver_schema(dataset)
    frame = spark.read.option("header", "true").csv(str(FIXTURES / "expected" / name))
    return frame.select(*[F.col(f"`{c}`").cast(schema[c].dataType).alias(c) for c in frame.columns])


def silver_rows(spark, env, dataset: Dataset, columns: list[str]):
    return spark.table(silver.silver_table(env, dataset)).select(*columns)


SCD2 = {
    "type": 2,
    "valid_from_column": "valid_from",
    "valid_to_column": "valid_to",
    "current_column": "is_current",
}
COLUMNS = ["customer_id", "name", "city", "changed_at", "lsn"]


def test_feed_as_scd1_with_hard_deletes_matches_the_hand_written_table(spark, env):
    dataset = customers()
    land(env, "feed", 1, "cdc/customers")
    first = run(spark, env, dataset, "r1")
    assert first.details["quarantined"] == 2  # unknown operation, missing sequence
    assert first.details["duplicates"] == 4  # superseded within the batch
    assert first.details["deleted"] == 0  # customer 2: inserted and deleted in one batch
    land(env, "feed", 2, "cdc/customers")
    second = run(spark, env, dataset, "r2")
    assert second.rows_read == 6
    assert_df_equality(
        silver_rows(spark, env, dataset, COLUMNS),
        expected(spark, "customers_scd1.csv", dataset),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    rejects = spark.table(silver.quarantine_table(env, dataset)).collect()
    reasons = sorted(r for row in rejects for r in row.reasons)
    assert reasons == [
        "sequence column 'changed_at' is null",
        "unknown operation (not in the cdc values)",
    ]


def test_feed_as_scd1_with_soft_deletes_keeps_the_flagged_row(spark, env):
    dataset = customers(cdc={"delete_mode": "soft"})
    land(env, "feed", 1, "cdc/customers")
    land(env, "feed", 2, "cdc/customers")  # both batches in one run: same end state
    run(spark, env, dataset, "r1")
    assert_df_equality(
        silver_rows(spark, env, dataset, [*COLUMNS, "_is_deleted"]),
        expected(spark, "customers_scd1_soft.csv", dataset),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_feed_as_scd2_splits_intervals_for_late_changes_and_closes_on_delete(spark, env):
    dataset = customers(scd=SCD2)
    land(env, "feed", 1, "cdc/customers")
    run(spark, env, dataset, "r1")
    land(env, "feed", 2, "cdc/customers")
    run(spark, env, dataset, "r2")
    table = silver_rows(spark, env, dataset, [*COLUMNS, "valid_from", "valid_to", "is_current"])
    assert_df_equality(
        table,
        expected(spark, "customers_scd2.csv", dataset),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    # Replaying every change again (a new copy of both files) changes nothing.
    before = table.collect()
    for batch in (1, 2):
        folder = Path(env.source_path("cdc/customers"))
        for file in (FIXTURES / "feed" / f"batch_{batch}").iterdir():
            shutil.copy(file, folder / f"again_{file.name}")
    run(spark, env, dataset, "r3")
    assert sorted(table.collect()) == sorted(before)


@pytest.mark.parametrize(
    "tracking", [{"track_history": ["city"]}, {"track_history_except": ["name"]}]
)
def test_scd2_with_tracked_columns_updates_untracked_changes_in_place(spark, env, tracking):
    """Only a change of city opens a version; a name change (and the sequence columns of
    every event) update the version the event falls in, the latest event winning."""
    dataset = customers(scd={**SCD2, **tracking})
    columns = [*COLUMNS, "valid_from", "valid_to", "is_current"]
    land(env, "tracked", 1, "cdc/customers")
    run(spark, env, dataset, "r1")
    table = silver_rows(spark, env, dataset, columns)
    # Bob's second event changed no tracked column: still one version, with its values.
    bob = [tuple(r) for r in table.where("customer_id = 2").collect()]
    assert [(r[1], r[4], r[6], r[7]) for r in bob] == [("Bob", 5, None, True)]
    land(env, "tracked", 2, "cdc/customers")
    run(spark, env, dataset, "r2")
    assert_df_equality(
        table,
        expected(spark, "customers_scd2_tracked.csv", dataset),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    before = table.collect()
    folder = Path(env.source_path("cdc/customers"))
    for batch in (1, 2):
        for file in (FIXTURES / "tracked" / f"batch_{batch}").iterdir():
            shutil.copy(file, folder / f"again_{file.name}")
    run(spark, env, dataset, "r3")
    assert sorted(table.collect()) == sorted(before)


def test_snapshot_scd2_tracking_price_keeps_a_renamed_product_in_its_version(spark, env):
    dataset = Dataset.model_validate({**PRODUCTS, "scd": {"type": 2, "track_history": ["price"]}})
    folder = Path(env.source_path("cdc/products"))
    folder.mkdir(parents=True)
    (folder / "s1.csv").write_text("product_id,name,price\n1,Pen,1.50\n2,Ink,4.00\n")
    run(spark, env, dataset, "r1")
    (folder / "s2.csv").write_text("product_id,name,price\n1,Biro,1.50\n2,Ink,4.50\n")
    run(spark, env, dataset, "r2")
    table = spark.table(silver.silver_table(env, dataset))
    snap1, snap2 = sorted({r._valid_from for r in table.collect()})
    rows = {
        (r.product_id, r.name, str(r.price), r._valid_from, r._valid_to, r._is_current)
        for r in table.collect()
    }
    assert rows == {
        (1, "Biro", "1.50", snap1, None, True),
        (2, "Ink", "4.00", snap1, snap2, False),
        (2, "Ink", "4.50", snap2, None, True),
    }


def test_ignore_null_updates_keeps_the_values_a_null_does_not_replace(spark, env):
    dataset = customers(cdc={"ignore_null_updates": True})
    folder = Path(env.source_path("cdc/customers"))
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text(
        "op,customer_id,name,city,changed_at,lsn\n"
        "I,1,Ann,Paris,2024-01-01T00:00:00,1\n"
        "U,2,Bob,,2024-01-01T00:00:00,2\n"
    )
    run(spark, env, dataset, "r1")
    (folder / "b.csv").write_text(
        "op,customer_id,name,city,changed_at,lsn\n"
        "U,1,,Nice,2024-01-02T00:00:00,3\n"
        "U,1,Anna,,2024-01-03T00:00:00,4\n"
        "U,2,,Lyon,2024-01-02T00:00:00,5\n"
    )
    run(spark, env, dataset, "r2")
    rows = {
        r.customer_id: (r.name, r.city, r.lsn)
        for r in silver_rows(spark, env, dataset, COLUMNS).collect()
    }
    assert rows == {1: ("Anna", "Nice", 4), 2: ("Bob", "Lyon", 5)}


PRODUCTS = {
    "id": "products",
    "owner": "team",
    "source": {"format": "csv", "path": "cdc/products"},
    "load": {"type": "snapshot"},
    "columns": [
        {"name": "product_id", "type": "int", "nullable": False},
        {"name": "name", "type": "string"},
        {"name": "price", "type": "decimal(8,2)"},
    ],
    "primary_key": ["product_id"],
}


@pytest.mark.parametrize("scd", [1, 2])
def test_snapshots_become_inserts_updates_and_deletes(spark, env, scd):
    dataset = Dataset.model_validate({**PRODUCTS, "scd": {"type": scd}})
    folder = Path(env.source_path("cdc/products"))
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "snapshots" / "batch_1" / "products.csv", folder / "s1.csv")
    first = run(spark, env, dataset, "r1")
    assert first.details["inserted"] == 3
    shutil.copy(FIXTURES / "snapshots" / "batch_2" / "products.csv", folder / "s2.csv")
    second = run(spark, env, dataset, "r2")
    table = spark.table(silver.silver_table(env, dataset))
    if scd == 1:
        assert second.details["inserted"] == 1
        assert second.details["updated"] == 1
        assert second.details["deleted"] == 1
        rows = {r.product_id: str(r.price) for r in table.collect()}
        assert rows == {1: "1.50", 2: "4.50", 4: "9.99"}
    else:
        snap1, snap2 = sorted({r._valid_from for r in table.collect()})
        rows = {
            (r.product_id, str(r.price), r._valid_from, r._valid_to, r._is_current)
            for r in table.collect()
        }
        assert rows == {
            (1, "1.50", snap1, None, True),
            (2, "4.00", snap1, snap2, False),
            (2, "4.50", snap2, None, True),
            (3, "2.25", snap1, snap2, False),
            (4, "9.99", snap2, None, True),
        }


def test_a_delete_whose_tombstone_committed_without_its_merge_is_applied_on_replay(spark, env):
    # merge_scd1 appends the tombstones while its MERGE runs: a run that stops may leave the
    # tombstone of a delete silver never saw. The replayed batch still deletes the row.
    from lakeline import cdc

    dataset = customers()
    land(env, "feed", 1, "cdc/customers")
    run(spark, env, dataset, "r1")
    folder = Path(env.source_path("cdc/customers"))
    (folder / "delete.csv").write_text(
        "op,customer_id,name,city,changed_at,lsn\nD,3,,,2024-01-09T10:00:00,30\n"
    )
    bronze.ingest(spark, env, dataset, "r2", StepResult(dataset.id, "bronze"))
    tombstones = cdc.tombstone_table(env, dataset)
    spark.createDataFrame(
        [(3, datetime(2024, 1, 9, 10), 30)], spark.table(tombstones).schema
    ).write.format("delta").mode("append").saveAsTable(tombstones)
    result = StepResult(dataset.id, "silver")
    silver.transform(spark, env, dataset, "r2", result)
    assert result.details["deleted"] == 1
    ids = sorted(r.customer_id for r in silver_rows(spark, env, dataset, COLUMNS).collect())
    assert 3 not in ids
    recorded = [tuple(r) for r in spark.table(tombstones).select("customer_id", "lsn").collect()]
    assert sorted(recorded) == [(2, 7), (3, 30)]  # not recorded twice


def test_hard_deletes_append_tombstones_once_and_soft_deletes_need_none(spark, env):
    from delta.tables import DeltaTable

    from lakeline import cdc, quality
    from lakeline.bronze import bronze_table

    dataset = customers()
    tombstones = cdc.tombstone_table(env, dataset)
    land(env, "feed", 1, "cdc/customers")
    run(spark, env, dataset, "r1")
    assert [tuple(r) for r in spark.table(tombstones).select("customer_id", "lsn").collect()] == [
        (2, 7)
    ]
    # The rules measure the changes, not the deletes: 11 rows, 1 of them a delete.
    metrics = spark.table(quality.metrics_table(env)).where(F.col("check") == "not_null")
    assert {r.rows_evaluated for r in metrics.collect()} == {10}
    before = DeltaTable.forName(spark, tombstones).history(1).first().version
    folder = Path(env.source_path("cdc/customers"))
    (folder / "more.csv").write_text(
        "op,customer_id,name,city,changed_at,lsn\nU,3,Cat,Turin,2024-01-08T10:00:00,20\n"
    )
    run(spark, env, dataset, "r2")  # no delete: the tombstone table is not touched
    assert DeltaTable.forName(spark, tombstones).history(1).first().version == before
    # All of bronze again as one batch (a replay): the delete is already tombstoned.
    silver_before = silver_rows(spark, env, dataset, COLUMNS).collect()
    again = spark.table(bronze_table(env, dataset))
    counts = cdc.process_batch(spark, env, dataset, again, 99, "again")
    assert counts["inserted"] == counts["deleted"] == 0  # same-sequence rows are rewritten
    assert spark.table(tombstones).count() == 1
    assert sorted(silver_rows(spark, env, dataset, COLUMNS).collect()) == sorted(silver_before)

    soft = customers(id="customers_soft", source={"path": "cdc/soft"}, cdc={"delete_mode": "soft"})
    land(env, "feed", 1, "cdc/soft")
    run(spark, env, soft, "r1")
    late = Path(env.source_path("cdc/soft")) / "late.csv"
    late.write_text(  # older than customer 2's delete: refused without a tombstone
        "op,customer_id,name,city,changed_at,lsn\nU,2,Bob,Nantes,2024-01-03T10:00:00,12\n"
    )
    run(spark, env, soft, "r2")
    assert not env.exists(spark, "ops", "customers_soft__tombstones")
    row = silver_rows(spark, env, soft, [*COLUMNS, "_is_deleted"]).where("customer_id = 2")
    assert [(r.city, r.lsn, r._is_deleted) for r in row.collect()] == [("Lyon", 7, True)]


def test_the_tombstone_table_is_made_with_silver_typed_like_its_key_and_sequence(spark, env):
    """Made with the silver table, so a batch's first delete writes rows, not a table."""
    from lakeline import cdc

    dataset = customers()
    silver.ensure_tables(spark, env, dataset)
    tombstones = spark.table(cdc.tombstone_table(env, dataset))
    schema = silver.silver_schema(dataset)
    names = ["customer_id", "changed_at", "lsn"]  # the key, then the sequence columns
    assert [(f.name, f.dataType) for f in tombstones.schema] == [
        (n, schema[n].dataType) for n in names
    ]
    assert tombstones.isEmpty()
    for other in (
        customers(id="customers_soft", cdc={"delete_mode": "soft"}),
        customers(id="customers_scd2", scd=SCD2),
    ):
        silver.ensure_tables(spark, env, other)
        assert env.exists(spark, "silver", other.id)
        assert not env.exists(spark, "ops", f"{other.id}__tombstones")
