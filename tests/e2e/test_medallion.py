"""The bundle's medallion job, run locally over the retail fixtures, end to end.

Batch 1, then batch 2, then batch 2 again (a repeated run). Gold is compared with rows
computed independently with DuckDB (tests/expected/compute_expected.py).
"""

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from lakeline.environment import Environment
from lakeline.local.runner import run_fixture_batches

REPO = Path(__file__).resolve().parents[2]
GOLD = ["dim_customer", "dim_product", "fct_order_lines", "agg_daily_sales"]
DATASETS = ["customers", "order_lines", "orders", "products"]


def snapshot(spark, env):
    """Content of every table of the environment (gold as rows, the rest as sorted rows)."""
    tables = {}
    for schema in ("bronze", "silver", "quarantine"):
        for dataset in DATASETS:
            frame = spark.table(env.table(schema, dataset))
            tables[(schema, dataset)] = sorted(map(tuple, frame.collect()), key=repr)
    for name in GOLD:
        frame = spark.table(env.table("gold", name))
        tables[("gold", name)] = (frame.schema, frame.collect())
    state = spark.table(env.table("ops", "state")).drop("updated_at", "run_id")
    tables[("ops", "state")] = sorted(map(tuple, state.collect()), key=repr)
    return tables


def versions(spark, env):
    return {
        (schema, d): DeltaTable.forName(spark, env.table(schema, d)).history(1).first()["version"]
        for schema in ("bronze", "silver", "quarantine")
        for d in DATASETS
    }


@pytest.fixture(scope="module")
def medallion(spark, tmp_path_factory):
    work = tmp_path_factory.mktemp("medallion")
    env = Environment("lakeline_dev", str(work / "landing"), str(work / "checkpoints"), False)
    fixtures = REPO / "fixtures" / "retail"
    runs, snaps = {}, {}
    for label, batch in (("batch_1", "1"), ("batch_2", "2")):
        [runs[label]] = run_fixture_batches(spark, REPO, work, fixtures, batches=[batch])
        assert runs[label].ok, [t.error for t in runs[label].failed]
        snaps[label] = snapshot(spark, env)
    before = versions(spark, env)
    [runs["again"]] = run_fixture_batches(spark, REPO, work, fixtures, batches=["2"])
    snaps["again"] = snapshot(spark, env)
    return {"env": env, "runs": runs, "snaps": snaps, "versions": (before, versions(spark, env))}


@pytest.mark.parametrize("batch", ["batch_1", "batch_2"])
@pytest.mark.parametrize("table", GOLD)
def test_gold_matches_independently_computed_rows(spark, medallion, batch, table):
    schema, rows = medallion["snaps"][batch][("gold", table)]
    actual = spark.createDataFrame(rows, schema)
    expected_csv = REPO / "tests" / "expected" / f"after_{batch}" / f"{table}.csv"
    expected = spark.read.schema(schema).option("header", True).csv(str(expected_csv))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def _outputs(run, step):
    outputs = [t.output for t in run.tasks if isinstance(t.output, dict)]
    return {o["dataset"]: o for o in outputs if o.get("step") == step}


@pytest.mark.parametrize("batch", ["batch_1", "batch_2"])
def test_every_row_read_is_accounted_for(medallion, batch):
    silver = _outputs(medallion["runs"][batch], "silver")
    bronze = _outputs(medallion["runs"][batch], "bronze")
    for dataset in DATASETS:
        d = silver[dataset]["details"]
        assert silver[dataset]["rows_read"] == bronze[dataset]["rows_written"]
        assert d["read"] == d["merged"] + d["quarantined"] + d["duplicates"], (dataset, d)
        assert d["merged"] == d["inserted"] + d["updated"] + d["stale"], (dataset, d)


def test_batch_2_effects_match_the_fixture_notes(medallion):
    silver = _outputs(medallion["runs"]["batch_2"], "silver")
    got = {
        d: {k: silver[d]["details"][k] for k in ("read", "quarantined", "inserted", "updated")}
        for d in DATASETS
    }
    assert got == {
        "customers": {"read": 7, "quarantined": 0, "inserted": 2, "updated": 3},
        "products": {"read": 5, "quarantined": 0, "inserted": 1, "updated": 3},
        "orders": {"read": 16, "quarantined": 1, "inserted": 9, "updated": 4},
        "order_lines": {"read": 26, "quarantined": 1, "inserted": 23, "updated": 1},
    }
    # The late rows (older updated_at than silver) never overwrite silver.
    assert silver["customers"]["details"]["stale"] == 1
    assert silver["orders"]["details"]["stale"] == 1


def test_malformed_rows_are_quarantined_with_their_reason(spark, medallion):
    env = medallion["env"]
    [bad_order] = spark.table(env.table("quarantine", "orders")).collect()
    assert bad_order.reasons == ["column 'shipping_fee': value does not fit type decimal(12,2)"]
    assert json.loads(bad_order.record)["order_id"] == "20048"
    assert bad_order.source_file.endswith(".csv") and bad_order.run_id.endswith("batch_2")
    [bad_line] = spark.table(env.table("quarantine", "order_lines")).collect()
    assert bad_line.reasons == ["primary key column 'line_number' is null"]
    silver_ids = {r.order_id for r in spark.table(env.table("silver", "orders")).collect()}
    assert 20048 not in silver_ids


def test_a_repeated_run_changes_no_table_and_no_watermark(medallion):
    snaps = medallion["snaps"]
    assert snaps["again"] == snaps["batch_2"]
    before, after = medallion["versions"]
    assert before == after  # not even an empty commit on bronze, silver or quarantine
    outputs = _outputs(medallion["runs"]["again"], "silver")
    assert all(o["rows_read"] == 0 for o in outputs.values())


def test_run_log_records_every_step(spark, medallion):
    env = medallion["env"]
    run_id = medallion["runs"]["batch_2"].run_id
    log = spark.table(env.table("ops", "run_log")).where(f"run_id = '{run_id}'").collect()
    steps = sorted((r.dataset, r.step, r.status) for r in log)
    assert ("*", "sync", "succeeded") in steps and ("*", "gold", "succeeded") in steps
    for dataset in DATASETS:
        assert (dataset, "bronze", "succeeded") in steps
        assert (dataset, "silver", "succeeded") in steps
    orders = next(r for r in log if r.dataset == "orders" and r.step == "silver")
    assert (orders.rows_read, orders.rows_written) == (16, 13)
    assert json.loads(orders.details)["quarantined"] == 1
