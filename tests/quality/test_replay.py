"""Replay of quarantined rows (exactly once, recoverable) and the live schema-drift check."""

from datetime import datetime

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import quarantine, silver
from lakeline.bronze import bronze_table
from lakeline.contracts import SchemaDriftError
from lakeline.metadata import Dataset
from lakeline.quality import RuleSet
from lakeline.runlog import StepResult

BRONZE = T.StructType(
    [T.StructField(n, T.StringType()) for n in ("id", "qty", "updated_at")]
    + [
        T.StructField("_run_id", T.StringType()),
        T.StructField("_source_file", T.StringType()),
        T.StructField("_ingested_at", T.TimestampType()),
    ]
)
T0 = datetime(2024, 3, 1, 12, 0)


def dataset(*rules, **extra) -> Dataset:
    return Dataset.model_validate(
        {
            "id": "items",
            "owner": "team",
            "source": {"format": "csv", "path": "shop/items"},
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "qty", "type": "int"},
                {"name": "updated_at", "type": "timestamp", "nullable": False},
            ],
            "primary_key": ["id"],
            "sequence_column": "updated_at",
            "quality": list(rules),
            **extra,
        }
    )


STRICT = dataset({"name": "big_enough", "check": "range", "column": "qty", "min": 5})
RELAXED = dataset()


@pytest.fixture
def quarantined(spark, env):
    """Batch 0 through the strict rules: id 2 to silver, ids 1 and 3 to quarantine."""
    rows = [
        ("1", "1", "2024-03-01T10:00:00", "r0", "a.csv", T0),  # too small for the strict rule
        ("2", "9", "2024-03-01T10:00:00", "r0", "a.csv", T0),
        ("3", "x", "2024-03-01T10:00:00", "r0", "a.csv", T0),  # never an int
    ]
    frame = spark.createDataFrame(rows, BRONZE)
    frame.write.format("delta").saveAsTable(bronze_table(env, STRICT))
    silver.ensure_tables(spark, env, STRICT)
    silver.process_batch(spark, env, STRICT, frame, 0, "r0")
    return env


def silver_ids(spark, env):
    return sorted(r.id for r in spark.table(silver.silver_table(env, RELAXED)).collect())


def version(spark, table):
    return DeltaTable.forName(spark, table).history(1).first()["version"]


def test_replay_moves_rows_that_now_pass_exactly_once(spark, quarantined):
    env = quarantined
    assert silver_ids(spark, env) == [2]
    counts = quarantine.replay(spark, env, RELAXED, "rp-1", StepResult("items", "replay"))
    assert (counts.pending, counts.replayed, counts.still_quarantined) == (2, 1, 1)
    assert (counts.inserted, counts.updated) == (1, 0)
    assert silver_ids(spark, env) == [1, 2]
    rows = {r.record: r for r in spark.table(silver.quarantine_table(env, RELAXED)).collect()}
    moved = next(r for k, r in rows.items() if '"id":"1"' in k)
    kept = next(r for k, r in rows.items() if '"id":"3"' in k)
    assert moved.replay_run_id == "rp-1" and moved.replayed_at is not None
    assert kept.replay_run_id is None and kept.replayed_at is None
    # Again: nothing new passes, silver is not touched.
    before = version(spark, silver.silver_table(env, RELAXED))
    again = quarantine.replay(spark, env, RELAXED, "rp-2")
    assert (again.pending, again.replayed, again.still_quarantined) == (1, 0, 1)
    assert version(spark, silver.silver_table(env, RELAXED)) == before
    assert silver_ids(spark, env) == [1, 2]


def test_replay_with_unchanged_rules_moves_nothing(spark, quarantined):
    counts = quarantine.replay(spark, quarantined, STRICT, "rp-s")
    assert (counts.pending, counts.replayed, counts.still_quarantined) == (2, 0, 2)
    assert silver_ids(spark, quarantined) == [2]


def test_an_interrupted_replay_is_finished_once(spark, quarantined):
    env = quarantined
    table = silver.quarantine_table(env, RELAXED)
    # A replay that claimed row 1 and stopped before applying it.
    DeltaTable.forName(spark, table).update(
        condition=F.col("record").contains('"id":"1"'), set={"replay_run_id": F.lit("rp-crash")}
    )
    counts = quarantine.replay(spark, env, RELAXED, "rp-next")
    assert counts.recovered == 1 and counts.pending == 1 and counts.replayed == 0
    assert silver_ids(spark, env) == [1, 2]
    # A replay that applied to silver and stopped before finishing: not applied twice.
    DeltaTable.forName(spark, table).update(
        condition=F.col("record").contains('"id":"1"'),
        set={"replay_run_id": F.lit("rp-crash2"), "replayed_at": F.lit(None)},
    )
    rules, counts = RuleSet.of(RELAXED), quarantine.ReplayCounts()
    quarantine._apply(spark, env, RELAXED, rules, "rp-crash2", counts)
    applied = version(spark, silver.silver_table(env, RELAXED))
    counts = quarantine.replay(spark, env, RELAXED, "rp-last")
    assert counts.recovered == 1
    assert version(spark, silver.silver_table(env, RELAXED)) == applied
    assert (
        spark.table(table).where("replayed_at IS NULL AND replay_run_id IS NOT NULL").count() == 0
    )


def test_a_claimed_row_failing_again_at_recovery_is_quarantined_anew(spark, quarantined):
    """A claim recovered under rules that reject the row again: quarantined, never lost."""
    env = quarantined
    table = silver.quarantine_table(env, STRICT)
    # A replay under relaxed rules claimed row 1 and stopped; the rules are strict again.
    DeltaTable.forName(spark, table).update(
        condition=F.col("record").contains('"id":"1"'), set={"replay_run_id": F.lit("rp-crash")}
    )
    counts = quarantine.replay(spark, env, STRICT, "rp-next")
    assert counts.recovered == 1 and counts.requarantined == 1
    assert silver_ids(spark, env) == [2]
    open_rows = spark.table(table).where("replayed_at IS NULL").collect()
    again = [r for r in open_rows if '"id":"1"' in r.record]
    assert len(again) == 1 and again[0].failed_rules == ["big_enough"]
    assert again[0].replay_run_id is None  # a fresh quarantine row, pending for replay


def test_schema_drift_fails_before_any_write_or_evolves_added_columns(spark, env):
    narrow = Dataset.model_validate(
        {
            **RELAXED.model_dump(exclude={"columns"}),
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "updated_at", "type": "timestamp", "nullable": False},
            ],
        }
    )
    silver.ensure_tables(spark, env, narrow)  # the table as an older contract made it
    table = silver.silver_table(env, RELAXED)
    before = version(spark, table)
    result = StepResult("items", "silver")
    with pytest.raises(SchemaDriftError, match="column 'qty' \\(int\\) is not in the silver table"):
        silver.check_schema(spark, env, RELAXED, result)
    assert result.details["schema_drift"] == ["column 'qty' (int) is not in the silver table"]
    assert version(spark, table) == before
    evolving = Dataset.model_validate({**RELAXED.model_dump(), "on_schema_drift": "evolve"})
    result = StepResult("items", "silver")
    silver.check_schema(spark, env, evolving, result)
    assert result.details["schema_evolved"] == ["qty"]
    assert "qty" in spark.table(table).columns
    # A column the contract does not have is never evolved away.
    spark.sql(f"ALTER TABLE {table} ADD COLUMNS (extra STRING)")
    with pytest.raises(SchemaDriftError, match="silver column 'extra'"):
        silver.check_schema(spark, env, evolving, StepResult("items", "silver"))
