"""The one mapping from a dataset to its bronze file stream: Auto Loader or the emulation."""

from __future__ import annotations

import pytest

from lakeline.bronze import file_reader
from lakeline.environment import Environment
from lakeline.metadata import Dataset

ENV = Environment(
    catalog="lakeline_dev",
    landing_root="/Volumes/lakeline_dev/landing/files",
    checkpoint_root="/Volumes/lakeline_dev/ops/checkpoints",
    unity_catalog=True,
)


def dataset(fmt: str = "json", mode: str = "none", options: dict | None = None) -> Dataset:
    return Dataset.model_validate(
        {
            "id": "events",
            "owner": "team",
            "source": {"format": fmt, "path": "app/events", "options": options or {}},
            "schema_evolution": mode,
            "columns": [{"name": "id", "type": "int"}],
            "primary_key": ["id"],
        }
    )


@pytest.mark.parametrize(
    ("mode", "rescued"),
    [("addNewColumns", False), ("rescue", True), ("failOnNewColumns", False), ("none", False)],
)
def test_auto_loader_options_for_every_schema_evolution_mode(mode, rescued):
    reader = file_reader(dataset("json", mode), ENV, auto_loader=True)
    expected = {
        "cloudFiles.format": "json",
        "cloudFiles.schemaLocation": "/Volumes/lakeline_dev/ops/checkpoints/events/bronze",
        "cloudFiles.schemaEvolutionMode": mode,
        "cloudFiles.inferColumnTypes": "false",
        "primitivesAsString": "true",
    }
    if rescued:
        expected["rescuedDataColumn"] = "_rescued_data"
    assert (reader.format, reader.options) == ("cloudFiles", expected)


@pytest.mark.parametrize("mode", ["addNewColumns", "rescue", "failOnNewColumns", "none"])
def test_the_local_emulation_reads_the_plain_file_source_for_every_mode(mode):
    reader = file_reader(dataset("csv", mode, {"sep": ";"}), ENV, auto_loader=False)
    assert reader.format == "csv"
    assert reader.options == {"maxFileAge": "36500d", "header": "true", "sep": ";"}


def test_parquet_keeps_its_types_and_reader_options_reach_both_paths():
    ds = dataset("parquet", "rescue", {"mergeSchema": "false"})
    workspace = file_reader(ds, ENV, auto_loader=True)
    assert "cloudFiles.inferColumnTypes" not in workspace.options
    assert workspace.options["cloudFiles.format"] == "parquet"
    assert workspace.options["mergeSchema"] == "false"
    assert file_reader(ds, ENV, auto_loader=False).options["mergeSchema"] == "false"


def test_a_csv_header_option_given_in_the_metadata_wins():
    reader = file_reader(dataset("csv", options={"header": "false"}), ENV, auto_loader=True)
    assert reader.options["header"] == "false"
    assert reader.options["cloudFiles.format"] == "csv"
