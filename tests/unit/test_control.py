"""sync compiles the YAML into the control table, idempotently."""

import shutil

import pytest
from delta.tables import DeltaTable

from lakeline import control
from lakeline.errors import MetadataError


def _version(spark, env):
    return DeltaTable.forName(spark, env.table("ops", "control")).history(1).first()["version"]


@pytest.fixture
def metadata(repo, tmp_path):
    target = tmp_path / "metadata"
    shutil.copytree(repo / "src" / "metadata", target)
    return target


def test_sync_writes_every_dataset_and_gold_table(spark, env, metadata):
    result = control.sync(spark, env, metadata, "run-1")
    assert (result.inserted, result.updated, result.deleted) == (8, 0, 0)
    rows = spark.table(env.table("ops", "control")).collect()
    kinds = {(r.object_type, r.object_id) for r in rows}
    assert ("dataset", "orders") in kinds and ("gold", "agg_daily_sales") in kinds
    plan = control.load_plan(spark, env)
    assert sorted(plan.datasets) == ["customers", "order_lines", "orders", "products"]
    assert plan.datasets["orders"].primary_key == ["order_id"]
    assert [g.name for g in plan.gold][-1] == "agg_daily_sales"


def test_unchanged_yaml_creates_no_new_version(spark, env, metadata):
    control.sync(spark, env, metadata, "run-1")
    before = _version(spark, env)
    again = control.sync(spark, env, metadata, "run-2")
    assert not again.changed and again.unchanged == 8
    assert _version(spark, env) == before


def test_changes_are_applied_in_one_commit(spark, env, metadata):
    control.sync(spark, env, metadata, "run-1")
    before = _version(spark, env)
    orders = metadata / "datasets" / "orders.yml"
    # (the owner is the contract's too, so the change is to the description)
    orders.write_text(orders.read_text().replace("Order headers from", "Order headers of"))
    (metadata / "gold" / "dim_product.sql").unlink()
    result = control.sync(spark, env, metadata, "run-2")
    assert (result.inserted, result.updated, result.deleted) == (0, 1, 1)
    assert _version(spark, env) == before + 1
    plan = control.load_plan(spark, env)
    assert plan.datasets["orders"].description.startswith("Order headers of")
    assert "dim_product" not in [g.name for g in plan.gold]
    # Everything the change did not touch is still there, as it was.
    assert sorted(plan.datasets) == ["customers", "order_lines", "orders", "products"]
    assert len(plan.gold) == 3
    unchanged = spark.table(env.table("ops", "control")).where("object_id = 'customers'")
    assert unchanged.first().synced_run_id == "run-1"


def test_disabled_datasets_are_not_planned(spark, env, metadata):
    products = metadata / "datasets" / "products.yml"
    products.write_text(products.read_text() + "enabled: false\n")
    control.sync(spark, env, metadata, "run-1")
    assert "products" not in control.load_plan(spark, env).datasets


def test_invalid_metadata_leaves_the_control_table_untouched(spark, env, metadata):
    control.sync(spark, env, metadata, "run-1")
    before = _version(spark, env)
    orders = metadata / "datasets" / "orders.yml"
    orders.write_text(orders.read_text().replace("type: incremental", "type: sometimes"))
    with pytest.raises(MetadataError, match="orders.yml"):
        control.sync(spark, env, metadata, "run-2")
    assert _version(spark, env) == before
