"""Replay of quarantined change-feed rows: deletes delete, SCD2 history splits, tombstones hold.

The feed is run once with strict settings (a length rule on ``city``, only ``D`` a delete),
the settings are relaxed and the quarantine replayed; silver must then equal a run of the
same feed with the relaxed settings from the start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakeline import bronze, cdc, quarantine, silver, state
from lakeline.environment import Environment
from lakeline.errors import DataError
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cdc"

# Customer 1: an update quarantined (city too long for the strict rule), then a later one.
# Customer 2: an update quarantined, then a delete that passes: the replayed update is
# older than the tombstone and must not bring the key back (SCD1), but is history (SCD2).
# Customer 3: a delete quarantined (operation DEL is not a delete for the strict feed).
# Customer 4: an unknown operation, quarantined under both settings.
FEED = """op,customer_id,name,city,changed_at,lsn
I,1,Ann,Paris,2024-01-01T00:00:00,1
I,2,Bob,Lyon,2024-01-01T00:00:00,2
I,3,Cid,Rome,2024-01-01T00:00:00,3
I,4,Dan,Bern,2024-01-01T00:00:00,4
U,1,Ann,Grenoble,2024-01-02T00:00:00,5
U,1,Ann,Oslo,2024-01-05T00:00:00,6
U,2,Bob,Marseille,2024-01-02T00:00:00,7
D,2,,,2024-01-03T00:00:00,8
DEL,3,,,2024-01-03T00:00:00,9
Q,4,Dan,Basel,2024-01-03T00:00:00,10
"""
SCD2 = {
    "type": 2,
    "valid_from_column": "valid_from",
    "valid_to_column": "valid_to",
    "current_column": "is_current",
}
COLUMNS = ["customer_id", "name", "city", "changed_at", "lsn"]


def customers(max_length: int, delete_values: list[str], **overrides) -> Dataset:
    spec = yaml.safe_load((FIXTURES / "customers.yml").read_text())
    spec["cdc"] = {**spec["cdc"], "delete_values": delete_values, **overrides.pop("cdc", {})}
    spec["quality"] = [
        {"name": "city_short", "check": "length", "column": "city", "max_length": max_length}
    ]
    return Dataset.model_validate({**spec, **overrides})


def run(spark, env: Environment, dataset: Dataset) -> None:
    folder = Path(env.source_path("cdc/customers"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "changes.csv").write_text(FEED)
    state.ensure_state_table(spark, env)
    bronze.ingest(spark, env, dataset, "r1", StepResult(dataset.id, "bronze"))
    silver.transform(spark, env, dataset, "r1", StepResult(dataset.id, "silver"))


def other_env(env: Environment, tmp_path: Path) -> Environment:
    fresh = Environment(
        catalog=f"{env.catalog}_relaxed",
        landing_root=str(tmp_path / "relaxed" / "landing"),
        checkpoint_root=str(tmp_path / "relaxed" / "checkpoints"),
        unity_catalog=False,
    )
    return fresh


def version(spark, table: str) -> int:
    return DeltaTable.forName(spark, table).history(1).first()["version"]


CASES = {
    "scd1_hard": ({}, COLUMNS),
    "scd1_soft": ({"cdc": {"delete_mode": "soft"}}, [*COLUMNS, "_is_deleted"]),
    "scd2": ({"scd": SCD2}, [*COLUMNS, "valid_from", "valid_to", "is_current"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_replayed_changes_give_the_silver_of_a_run_without_the_rule(spark, env, tmp_path, case):
    overrides, columns = CASES[case]
    strict = customers(5, ["D"], **overrides)
    relaxed = customers(20, ["D", "DEL"], **overrides)
    run(spark, env, strict)
    quarantined = spark.table(silver.quarantine_table(env, strict))
    assert quarantined.count() == 4  # two updates, the DEL, the unknown operation

    counts = quarantine.replay(spark, env, relaxed, "rp-1", StepResult(relaxed.id, "replay"))
    assert (counts.pending, counts.replayed, counts.still_quarantined) == (4, 3, 1)
    assert counts.requarantined == 0

    reference = other_env(env, tmp_path)
    reference.ensure_schemas(spark)
    run(spark, reference, relaxed)
    table = silver.silver_table(env, relaxed)
    # Soft deletes: a deleted row keeps the values of the change before its delete *in the
    # batch*; a change older than the delete that comes later (replayed, or in a later
    # bronze batch alike) is stale, so customer 2 keeps Lyon, not Marseille.
    same = F.col("customer_id") != 2 if case == "scd1_soft" else F.lit(True)
    assert_df_equality(
        spark.table(table).where(same).select(*columns),
        spark.table(silver.silver_table(reference, relaxed)).where(same).select(*columns),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    rows = spark.table(table).collect()
    if case == "scd1_hard":
        assert sorted(r.customer_id for r in rows) == [1, 4]  # 2 and 3 deleted
        assert {r.customer_id: r.city for r in rows}[1] == "Oslo"  # Grenoble is older
    elif case == "scd1_soft":
        assert {r.customer_id: (r.city, r._is_deleted) for r in rows} == {
            1: ("Oslo", False),
            2: ("Lyon", True),
            3: ("Rome", True),
            4: ("Bern", False),
        }
    else:
        history = sorted(
            (r.customer_id, r.city, r.valid_from.day, r.valid_to and r.valid_to.day)
            for r in rows
            if r.customer_id in (1, 2, 3)
        )
        assert history == [
            (1, "Grenoble", 2, 5),
            (1, "Oslo", 5, None),
            (1, "Paris", 1, 2),
            (2, "Lyon", 1, 2),
            (2, "Marseille", 2, 3),
            (3, "Rome", 1, 3),
        ]

    # A second replay finds only the row that still fails, and changes nothing.
    before = version(spark, table)
    again = quarantine.replay(spark, env, relaxed, "rp-2")
    assert (again.pending, again.replayed, again.still_quarantined) == (1, 0, 1)
    assert version(spark, table) == before


def test_an_interrupted_change_feed_replay_is_finished_once(spark, env):
    strict = customers(5, ["D"])
    relaxed = customers(20, ["D", "DEL"])
    run(spark, env, strict)
    name = silver.quarantine_table(env, relaxed)
    passing = F.col("record").contains('"op":"U"') | F.col("record").contains('"op":"DEL"')
    # A replay that claimed its rows and stopped before applying them.
    DeltaTable.forName(spark, name).update(
        condition=passing, set={"replay_run_id": F.lit("rp-crash")}
    )
    counts = quarantine.replay(spark, env, relaxed, "rp-next")
    assert counts.recovered == 3 and counts.pending == 1 and counts.replayed == 0
    assert counts.deleted == 1  # customer 3
    ids = sorted(r.customer_id for r in spark.table(silver.silver_table(env, relaxed)).collect())
    assert ids == [1, 4]
    # A replay that applied to silver, stopped before recording its tombstone (customer 3's
    # delete) and so before finishing: silver is not touched again, the tombstone is added.
    DeltaTable.forName(spark, name).update(
        condition=passing,
        set={"replay_run_id": F.lit("rp-crash2"), "replayed_at": F.lit(None)},
    )
    rules = quarantine.RuleSet.of(relaxed)
    quarantine._apply(spark, env, relaxed, rules, "rp-crash2", quarantine.ReplayCounts())
    tombstones = cdc.tombstone_table(env, relaxed)
    DeltaTable.forName(spark, tombstones).delete("customer_id = 3")
    applied = version(spark, silver.silver_table(env, relaxed))
    counts = quarantine.replay(spark, env, relaxed, "rp-last")
    assert counts.recovered == 3
    assert version(spark, silver.silver_table(env, relaxed)) == applied
    kept = {(r.customer_id, r.lsn) for r in spark.table(tombstones).collect()}
    assert kept == {(2, 8), (3, 9)}
    assert spark.table(name).where("replayed_at IS NULL AND replay_run_id IS NOT NULL").count() == 0
    # With every tombstone in place, a recovery writes nothing at all.
    DeltaTable.forName(spark, name).update(
        condition=passing,
        set={"replay_run_id": F.lit("rp-crash3"), "replayed_at": F.lit(None)},
    )
    quarantine._apply(spark, env, relaxed, rules, "rp-crash3", quarantine.ReplayCounts())
    tables = [silver.silver_table(env, relaxed), tombstones]
    applied = [version(spark, t) for t in tables]
    assert quarantine.replay(spark, env, relaxed, "rp-end").recovered == 3
    assert [version(spark, t) for t in tables] == applied


def test_a_snapshot_load_is_not_replayed(spark, env):
    dataset = Dataset.model_validate(
        {
            "id": "products",
            "owner": "team",
            "source": {"format": "csv", "path": "cdc/products"},
            "load": {"type": "snapshot"},
            "columns": [{"name": "product_id", "type": "int", "nullable": False}],
            "primary_key": ["product_id"],
        }
    )
    with pytest.raises(DataError, match="dataset 'products': quarantined rows of a snapshot"):
        quarantine.replay(spark, env, dataset, "rp-1")
