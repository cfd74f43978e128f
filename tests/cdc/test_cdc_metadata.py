"""The cdc, scd and schema_evolution blocks of a dataset: what the metadata accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lakeline.metadata import Dataset

BASE = {
    "id": "customers",
    "owner": "crm",
    "source": {"format": "csv", "path": "crm/customers"},
    "columns": [
        {"name": "id", "type": "bigint"},
        {"name": "city", "type": "string"},
        {"name": "changed_at", "type": "timestamp"},
    ],
    "primary_key": ["id"],
}
CDC = {"operation_column": "op", "sequence_by": ["changed_at"]}


def test_a_cdc_dataset_with_scd2_gets_validity_columns_typed_like_the_sequence():
    ds = Dataset.model_validate({**BASE, "load": {"type": "cdc"}, "cdc": CDC, "scd": {"type": 2}})
    assert ds.added_silver_columns() == {
        "_valid_from": "timestamp",
        "_valid_to": "timestamp",
        "_is_current": "boolean",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"load": {"type": "cdc"}}, "a cdc load needs the operation column"),
        ({"load": {"type": "cdc"}, "cdc": {"operation_column": "op"}}, "at least one sequence"),
        ({"cdc": CDC}, "only applies to load types cdc and snapshot"),
        ({"scd": {"type": 2}}, "SCD type 2 needs load type cdc or snapshot"),
        (
            {"load": {"type": "cdc"}, "cdc": {**CDC, "sequence_by": ["lsn"]}},
            "'lsn' is not a column",
        ),
        (
            {"load": {"type": "cdc"}, "cdc": {**CDC, "operation_column": "city"}},
            "cannot reach silver",
        ),
        (
            {"load": {"type": "snapshot"}, "scd": {"type": 2, "valid_from_column": "city"}},
            "'city' clashes with a column",
        ),
        (
            {"load": {"type": "cdc"}, "cdc": {**CDC, "delete_mode": "soft"}, "scd": {"type": 2}},
            "soft deletes are for SCD1",
        ),
        ({"schema_evolution": "addNewColumn"}, "addNewColumns"),
        (
            {"load": {"type": "snapshot"}, "scd": {"type": 2, "track_history": ["town"]}},
            r"scd.track_history.0: column 'town' is not among the columns",
        ),
        (
            {"load": {"type": "snapshot"}, "scd": {"type": 2, "track_history_except": ["id"]}},
            "'id' is a key column",
        ),
        (
            {
                "load": {"type": "cdc"},
                "cdc": CDC,
                "scd": {"type": 2, "track_history": ["changed_at"]},
            },
            "'changed_at' is a sequence column",
        ),
        (
            {
                "load": {"type": "snapshot"},
                "scd": {"type": 2, "track_history": ["city"], "track_history_except": []},
            },
            "either 'track_history' or 'track_history_except'",
        ),
        (
            {"load": {"type": "snapshot"}, "scd": {"track_history": ["city"]}},
            "only applies to SCD type 2",
        ),
    ],
)
def test_problems_name_the_field(extra, message):
    with pytest.raises(ValidationError, match=message):
        Dataset.model_validate({**BASE, **extra})


def test_tracked_columns_leave_out_keys_and_sequence_for_an_except_list():
    spec = {**BASE, "load": {"type": "cdc"}, "cdc": CDC}
    spec["columns"] = [*BASE["columns"], {"name": "name", "type": "string"}]
    ds = Dataset.model_validate({**spec, "scd": {"type": 2, "track_history_except": ["name"]}})
    assert ds.tracked_columns() == ["city"]
    assert Dataset.model_validate({**spec, "scd": {"type": 2}}).tracked_columns() is None


def test_an_unknown_tracked_column_is_reported_with_its_file_and_field(tmp_path):
    import yaml

    from lakeline.errors import MetadataError
    from lakeline.metadata import load_project

    folder = tmp_path / "metadata" / "datasets"
    folder.mkdir(parents=True)
    spec = {**BASE, "load": {"type": "snapshot"}, "scd": {"type": 2, "track_history": ["town"]}}
    (folder / "customers.yml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MetadataError) as raised:
        load_project(tmp_path / "metadata")
    message = str(raised.value)
    assert "customers.yml [dataset customers] field 'scd.track_history.0'" in message
    assert "column 'town' is not among the columns" in message
