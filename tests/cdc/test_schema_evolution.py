"""Schema evolution modes at bronze, with Auto Loader's meaning, and the schema history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lakeline import bronze, schema_evolution, silver, state
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult


def dataset(mode: str, fmt: str = "json") -> Dataset:
    return Dataset.model_validate(
        {
            "id": "events",
            "owner": "team",
            "source": {"format": fmt, "path": "app/events"},
            "schema_evolution": mode,
            "columns": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}],
            "primary_key": ["id"],
        }
    )


def land(env, name: str, text: str) -> None:
    folder = Path(env.source_path("app/events"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def ingest(spark, env, ds: Dataset, run_id: str) -> StepResult:
    state.ensure_state_table(spark, env)
    result = StepResult(ds.id, "bronze")
    bronze.ingest(spark, env, ds, run_id, result)
    return result


def rows(spark, env, ds):
    table = spark.table(bronze.bronze_table(env, ds))
    return table, {r.id: r.asDict() for r in table.collect()}


@pytest.mark.parametrize("mode", ["none", "addNewColumns", "rescue", "failOnNewColumns"])
def test_new_json_field_per_mode(spark, env, mode):
    ds = dataset(mode)
    land(env, "a.json", '{"id": "1", "name": "a"}\n')
    ingest(spark, env, ds, "r1")
    if mode == "addNewColumns":  # silver's stream of bronze survives bronze's evolution
        silver.transform(spark, env, ds, "r1", StepResult(ds.id, "silver"))
    land(env, "b.json", '{"id": "2", "name": "b", "color": "red"}\n')
    if mode == "failOnNewColumns":
        for _ in range(2):  # fails until the schema or the file changes
            with pytest.raises(schema_evolution.SchemaEvolutionError, match="color"):
                ingest(spark, env, ds, "r2")
        assert spark.table(bronze.bronze_table(env, ds)).count() == 1
        return
    result = ingest(spark, env, ds, "r2")
    table, found = rows(spark, env, ds)
    history = spark.table(schema_evolution.history_table(env)) if mode != "none" else None
    if mode == "none":
        assert "color" not in table.columns
        assert "source_schema_drift" not in result.details
        assert found["2"]["name"] == "b"
    elif mode == "addNewColumns":
        assert found["2"]["color"] == "red" and found["1"]["color"] is None
        (entry,) = history.collect()
        assert (entry.action, entry.added, entry.mode) == ("evolved", ["color"], mode)
        silver.transform(spark, env, ds, "r2", StepResult(ds.id, "silver"))
        assert spark.table(silver.silver_table(env, ds)).count() == 2
        land(env, "c.json", '{"id": "3", "name": "c", "color": "blue"}\n')
        again = ingest(spark, env, ds, "r3")  # the stored schema has the column now
        assert "source_schema_drift" not in again.details
        assert rows(spark, env, ds)[1]["3"]["color"] == "blue"
    else:
        assert "color" not in table.columns
        rescued = json.loads(found["2"]["_rescued_data"])
        assert rescued == {"color": "red", "_file_path": found["2"]["_source_file"]}
        assert rescued["_file_path"].endswith("/b.json")
        assert found["1"]["_rescued_data"] is None
        assert result.details["source_schema_drift"]["action"] == "rescued"
        assert history.count() == 1


def test_csv_columns_appended_are_rescued_and_out_of_place_ones_refused(spark, env):
    ds = dataset("rescue", "csv")
    land(env, "a.csv", "id,name\n1,a\n")
    ingest(spark, env, ds, "r1")
    land(env, "b.csv", "id,name,color\n2,b,red\n")
    ingest(spark, env, ds, "r2")
    found = rows(spark, env, ds)[1]
    rescued = json.loads(found["2"]["_rescued_data"])
    assert rescued == {"color": "red", "_file_path": found["2"]["_source_file"]}
    land(env, "c.csv", "color,id,name\ngreen,3,c\n")
    with pytest.raises(schema_evolution.SchemaEvolutionError, match="must come after"):
        ingest(spark, env, ds, "r3")


def land_parquet(spark, env, tmp_path, name: str, rows: list[tuple], ddl: str) -> None:
    """One real Parquet file, written by Spark, as ``name`` in the source folder."""
    written = tmp_path / f"write_{name}"
    spark.createDataFrame(rows, ddl).coalesce(1).write.parquet(str(written))
    (part,) = written.glob("part-*.parquet")
    folder = Path(env.source_path("app/events"))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(str(part), folder / name)


def test_parquet_values_of_another_type_are_rescued_with_their_file(spark, env, tmp_path):
    ds = dataset("rescue", "parquet")
    land_parquet(spark, env, tmp_path, "a.parquet", [(1, "a")], "id int, name string")
    ingest(spark, env, ds, "r1")
    # b.parquet says string where the stored schema says int, and has an unknown column.
    rows_b = [("2", "b", "red"), ("x", "c", None)]
    land_parquet(spark, env, tmp_path, "b.parquet", rows_b, "id string, name string, color string")
    result = ingest(spark, env, ds, "r2")
    table = spark.table(bronze.bronze_table(env, ds))
    assert dict(table.dtypes)["id"] == "int" and "color" not in table.columns
    found = {r.name: r.asDict() for r in table.collect()}
    assert (found["a"]["id"], found["a"]["_rescued_data"]) == (1, None)
    b_file = found["b"]["_source_file"]
    assert b_file.endswith("/b.parquet") and found["c"]["_source_file"] == b_file
    assert found["b"]["id"] is None and found["c"]["id"] is None
    assert json.loads(found["b"]["_rescued_data"]) == {
        "id": "2",
        "color": "red",
        "_file_path": b_file,
    }
    assert json.loads(found["c"]["_rescued_data"]) == {"id": "x", "_file_path": b_file}
    drift = result.details["source_schema_drift"]
    assert (drift["action"], drift["retyped"]) == ("rescued", ["id: int -> string"])
    # A later file that fits again is read with its types; nothing rescued.
    land_parquet(spark, env, tmp_path, "c.parquet", [(3, "d")], "id int, name string")
    ingest(spark, env, ds, "r3")
    later = spark.table(bronze.bronze_table(env, ds)).where("name = 'd'").first()
    assert (later.id, later._rescued_data) == (3, None)


@pytest.mark.parametrize("mode", ["addNewColumns", "failOnNewColumns"])
def test_parquet_type_change_outside_rescue_stops_before_writing(spark, env, tmp_path, mode):
    ds = dataset(mode, "parquet")
    land_parquet(spark, env, tmp_path, "a.parquet", [(1, "a")], "id int, name string")
    ingest(spark, env, ds, "r1")
    land_parquet(spark, env, tmp_path, "b.parquet", [("2", "b")], "id string, name string")
    with pytest.raises(
        schema_evolution.SchemaEvolutionError, match=r"id: int -> string.*b\.parquet"
    ):
        ingest(spark, env, ds, "r2")
    assert spark.table(bronze.bronze_table(env, ds)).count() == 1


def test_a_drifted_file_whose_append_failed_is_still_rescued_when_its_batch_runs_again(
    spark, env, monkeypatch
):
    from lakeline.errors import LakelineError

    ds = dataset("rescue")
    land(env, "a.json", '{"id": "1", "name": "a"}\n')
    ingest(spark, env, ds, "r1")
    land(env, "b.json", '{"id": "2", "name": "b", "color": "red"}\n')
    real_append = bronze._append

    def full_disk(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(bronze, "_append", full_disk)
    with pytest.raises(LakelineError, match="disk full"):
        ingest(spark, env, ds, "r2")
    # The batch's files were recorded beside the append that failed.
    entries = spark.table(env.table("ops", state.STATE_TABLE)).where("kind = 'file'")
    b_json = entries.where(entries.key.endswith("/b.json"))
    assert b_json.count() == 1
    monkeypatch.setattr(bronze, "_append", real_append)
    result = ingest(spark, env, ds, "r3")  # the checkpoint runs the failed batch again
    # Its file is still pending for drift (its batch never committed), so its new field is
    # rescued rather than dropped, and it is listed in the state once.
    found = rows(spark, env, ds)[1]
    assert json.loads(found["2"]["_rescued_data"])["color"] == "red"
    assert result.details["source_schema_drift"]["action"] == "rescued"
    assert b_json.count() == 1 and entries.count() == 2
