"""Schema evolution modes at bronze, with Auto Loader's meaning, and the schema history."""

from __future__ import annotations

import json
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
        assert json.loads(found["2"]["_rescued_data"]) == {"color": "red"}
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
    assert json.loads(found["2"]["_rescued_data"]) == {"color": "red"}
    land(env, "c.csv", "color,id,name\ngreen,3,c\n")
    with pytest.raises(schema_evolution.SchemaEvolutionError, match="must come after"):
        ingest(spark, env, ds, "r3")
