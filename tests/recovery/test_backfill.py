"""Backfill: silver rebuilt from bronze (all, or a range of runs) without the source files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakeline import backfill, bronze, silver, state
from lakeline.environment import SCHEMAS, Environment
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cdc"
COLUMNS = ["customer_id", "name", "city", "changed_at", "lsn"]


def _run(spark, env, dataset, run_id):
    state.ensure_state_table(spark, env)
    bronze.ingest(spark, env, dataset, run_id, StepResult(dataset.id, "bronze"))
    silver.transform(spark, env, dataset, run_id, StepResult(dataset.id, "silver"))


def test_backfill_rebuilds_silver_from_bronze_alone(spark, env):
    dataset = Dataset.model_validate(yaml.safe_load((FIXTURES / "customers.yml").read_text()))
    landing = Path(env.source_path("cdc/customers"))
    landing.mkdir(parents=True)
    for batch in (1, 2):
        for file in (FIXTURES / "feed" / f"batch_{batch}").iterdir():
            shutil.copy(file, landing / file.name)
        _run(spark, env, dataset, f"r{batch}")
    table = silver.silver_table(env, dataset)
    good = spark.table(table).select(*COLUMNS).collect()
    shutil.rmtree(landing)  # the sources are gone: only bronze can bring silver back

    # A range: run r2's rows applied again repair what a bad change did to them.
    spark.sql(f"UPDATE {table} SET city = 'wrong' WHERE customer_id = 3")
    result = StepResult(dataset.id, "backfill")
    backfill.rebuild_silver(spark, env, dataset, "b1", result, runs=["r2"])
    assert result.details["read"] == 6
    assert sorted(spark.table(table).select(*COLUMNS).collect()) == sorted(good)

    # Everything: silver emptied, the stream starts again from bronze's first version.
    spark.sql(f"DELETE FROM {table} WHERE customer_id IN (1, 2)")
    result = StepResult(dataset.id, "backfill")
    backfill.rebuild_silver(spark, env, dataset, "b2", result)
    assert result.details["backfill"] == "all"
    assert result.details["read"] == 17
    assert_df_equality(
        spark.table(table).select(*COLUMNS),
        spark.createDataFrame(good, spark.table(table).select(*COLUMNS).schema),
        ignore_row_order=True,
    )
    assert spark.table(silver.quarantine_table(env, dataset)).count() == 2  # not doubled
    assert spark.table(table).where(F.col("customer_id") == 4).count() == 0


@pytest.fixture
def job_catalog(spark):
    """The job's default catalog, as the CLI uses it; dropped afterwards, because the
    end-to-end tests run the job into the same catalog of the suite's session."""
    from lakeline import cli
    from lakeline.local.bundle import load_job

    catalog = load_job(Path(__file__).resolve().parents[2], cli.JOB_KEY, None).variables["catalog"]
    yield catalog
    env = Environment(catalog, "", "", unity_catalog=False)
    for schema in SCHEMAS:
        spark.sql(f"DROP SCHEMA IF EXISTS {env.schema(schema)} CASCADE")


def test_lakeline_backfill_command_rebuilds_silver_equal_to_the_clean_run(
    spark, tmp_path, capsys, job_catalog
):
    """`lakeline backfill customers` on a local work folder: silver comes back as it was."""
    import json

    from delta.tables import DeltaTable

    from lakeline import cli, pipeline

    repo = Path(__file__).resolve().parents[2]
    work = tmp_path / "work"
    request = pipeline.Request(
        catalog=job_catalog,
        landing_root=str(work / "landing"),
        checkpoint_root=str(work / "checkpoints"),
        run_id="clean-1",
        metadata_dir=str(repo / "src" / "metadata"),
        dataset="customers",
        layer="silver",
    )
    pipeline.run_sync(spark, request)
    env = request.environment(spark)
    dataset = pipeline.control.dataset_from_control(spark, env, "customers")
    landing = Path(env.source_path(dataset.source.path))
    landing.mkdir(parents=True)
    retail = repo / "fixtures" / "retail"
    for batch in (1, 2):
        for file in (retail / f"batch_{batch}" / "customers").iterdir():
            shutil.copy(file, landing / file.name)
        step = pipeline.Request(**{**request.__dict__, "run_id": f"clean-{batch}"})
        pipeline.run_ingest(spark, step)
        pipeline.run_transform(spark, step)
    table = silver.silver_table(env, dataset)
    columns = [c.name for c in dataset.columns]
    clean = spark.table(table).select(*columns).collect()
    assert len(clean) > 1
    shutil.rmtree(landing)  # only bronze is left to rebuild from
    damaged = DeltaTable.forName(spark, table)
    damaged.delete(F.col("customer_id") == clean[0].customer_id)
    damaged.update(set={"customer_id": -F.col("customer_id")})
    capsys.readouterr()

    code = cli.main(
        ["backfill", "customers", "--bundle", str(repo), "--workdir", str(work), "--no-gold"]
    )
    printed = json.loads(capsys.readouterr().out)
    assert (code, printed["status"], printed["details"]["backfill"]) == (0, "succeeded", "all")
    rebuilt = spark.table(table).select(*columns)
    assert_df_equality(rebuilt, spark.createDataFrame(clean, rebuilt.schema), ignore_row_order=True)
