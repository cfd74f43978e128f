"""Every kind of bad metadata gets an error naming the file, the dataset and the field."""

import json
import textwrap
from pathlib import Path

import pytest

from lakeline.cli import main as cli
from lakeline.errors import MetadataError
from lakeline.metadata import LoadType, SourceFormat, dataset_json_schema, load_project

GOOD = """
id: {id}
owner: sales-data@example.com
source:
  format: csv
  path: retail/{id}
load:
  type: incremental
  watermark_column: updated_at
columns:
  - {{name: {id}_id, type: bigint, nullable: false}}
  - {{name: amount, type: "decimal(12,2)"}}
  - {{name: updated_at, type: timestamp}}
primary_key: [{id}_id]
sequence_column: updated_at
"""


def project(tmp_path: Path, datasets: dict[str, str], gold: dict[str, str] | None = None) -> Path:
    root = tmp_path / "metadata"
    (root / "datasets").mkdir(parents=True)
    (root / "gold").mkdir()
    for name, text in datasets.items():
        (root / "datasets" / f"{name}.yml").write_text(textwrap.dedent(text))
    for name, sql in (gold or {}).items():
        (root / "gold" / f"{name}.sql").write_text(sql)
    return root


def problems(root: Path) -> list:
    with pytest.raises(MetadataError) as caught:
        load_project(root)
    return caught.value.problems


def test_the_sample_metadata_loads(repo):
    loaded = load_project(repo / "src" / "metadata")
    assert set(loaded.datasets) == {"customers", "products", "orders", "order_lines"}
    orders = loaded.datasets["orders"]
    assert orders.load.type is LoadType.incremental
    assert orders.source.format is SourceFormat.csv
    assert orders.column("shipping_fee").type == "decimal(12,2)"
    order = [g.name for g in loaded.gold_order()]
    assert order.index("fct_order_lines") < order.index("agg_daily_sales")


def test_valid_dataset_round_trips(tmp_path):
    loaded = load_project(project(tmp_path, {"orders": GOOD.format(id="orders")}))
    assert loaded.datasets["orders"].primary_key == ["orders_id"]
    assert loaded.dataset_files["orders"] == "metadata/datasets/orders.yml"


def test_unknown_key(tmp_path):
    text = GOOD.format(id="orders") + "primary_keys: [x]\n"
    [p] = problems(project(tmp_path, {"orders": text}))
    assert (p.file, p.dataset, p.field) == (
        "metadata/datasets/orders.yml",
        "orders",
        "primary_keys",
    )
    assert "unknown key" in p.message


def test_unknown_key_nested(tmp_path):
    text = GOOD.format(id="orders").replace("  path: retail/orders", "  pth: retail/orders")
    found = {(p.field, p.message) for p in problems(project(tmp_path, {"orders": text}))}
    assert (
        "source.pth",
        "unknown key; check the spelling against the dataset JSON Schema",
    ) in found


def test_missing_required_field(tmp_path):
    text = GOOD.format(id="orders").replace("owner: sales-data@example.com\n", "")
    [p] = problems(project(tmp_path, {"orders": text}))
    assert (p.dataset, p.field, p.message) == ("orders", "owner", "required field is missing")


def test_wrong_type(tmp_path):
    text = GOOD.format(id="orders").replace("nullable: false", "nullable: sometimes")
    [p] = problems(project(tmp_path, {"orders": text}))
    assert p.field == "columns.0.nullable"
    assert "boolean" in p.message


def test_unknown_load_type(tmp_path):
    text = GOOD.format(id="orders").replace("type: incremental", "type: incremntal")
    found = problems(project(tmp_path, {"orders": text}))
    assert any(
        p.field == "load.type" and "'incremntal'" in p.message and "'full'" in p.message
        for p in found
    ), found


def test_unknown_column_type(tmp_path):
    text = GOOD.format(id="orders").replace('"decimal(12,2)"', "money")
    [p] = problems(project(tmp_path, {"orders": text}))
    assert p.field == "columns.1.type"
    assert "unknown type 'money'" in p.message


def test_duplicate_dataset_id(tmp_path):
    root = project(
        tmp_path, {"orders": GOOD.format(id="orders"), "orders_copy": GOOD.format(id="orders")}
    )
    [p] = problems(root)
    assert p.file == "metadata/datasets/orders_copy.yml"
    assert (p.dataset, p.field) == ("orders", "id")
    assert "duplicate dataset id" in p.message and "orders.yml" in p.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("id: orders", 'id: "orders; DROP TABLE x"', "id"),
        ("{name: amount,", '{name: "amount` --",', "columns.1.name"),
        ("primary_key: [orders_id]", 'primary_key: ["orders_id) OR (1=1"]', "primary_key.0"),
    ],
)
def test_identifiers_that_could_inject_sql_are_rejected(tmp_path, old, new, field):
    text = GOOD.format(id="orders").replace(old, new)
    found = problems(project(tmp_path, {"orders": text}))
    assert any(p.field == field and "not a plain identifier" in p.message for p in found), found


def test_cross_field_problems_name_the_field(tmp_path):
    text = (
        GOOD.format(id="orders")
        .replace("primary_key: [orders_id]", "primary_key: [order_id]")
        .replace("sequence_column: updated_at", "sequence_column: changed_at")
    )
    found = {(p.field, p.message) for p in problems(project(tmp_path, {"orders": text}))}
    assert ("primary_key.0", "column 'order_id' is not among the columns") in found
    assert ("sequence_column", "column 'changed_at' is not among the columns") in found


def test_all_errors_in_a_file_are_reported_at_once(tmp_path):
    text = (
        GOOD.format(id="orders")
        .replace("owner: sales-data@example.com\n", "")
        .replace("type: incremental", "type: streaming_cdc")
        .replace("nullable: false", "nullable: sometimes")
    )
    root = project(tmp_path, {"orders": text, "customers": GOOD.format(id="customers") + "x: 1\n"})
    found = problems(root)
    fields = {(p.dataset, p.field) for p in found}
    assert {
        ("orders", "owner"),
        ("orders", "load.type"),
        ("orders", "columns.0.nullable"),
    } <= fields
    assert ("customers", "x") in fields
    message = str(MetadataError(found))
    assert "metadata/datasets/orders.yml [dataset orders] field 'owner'" in message


def test_gold_referencing_an_unknown_dataset(tmp_path):
    sql = "SELECT * FROM {{ silver.orderz }}"
    [p] = problems(project(tmp_path, {"orders": GOOD.format(id="orders")}, {"fct": sql}))
    assert (p.file, p.dataset, p.field) == ("metadata/gold/fct.sql", "fct", "sql")
    assert "no dataset 'orderz'" in p.message


def test_gold_reference_that_is_not_a_table(tmp_path):
    sql = "SELECT * FROM {{ silver.orders; drop table x }}"
    [p] = problems(project(tmp_path, {"orders": GOOD.format(id="orders")}, {"fct": sql}))
    assert "cannot resolve reference" in p.message


def test_gold_dependency_cycle(tmp_path):
    gold = {
        "a": "SELECT * FROM {{ gold.b }}",
        "b": "SELECT * FROM {{ gold.c }}",
        "c": "SELECT * FROM {{ gold.a }} JOIN {{ silver.orders }}",
    }
    [p] = problems(project(tmp_path, {"orders": GOOD.format(id="orders")}, gold))
    assert "cycle: a -> b -> c -> a" in p.message


def test_gold_order_puts_dependencies_first(tmp_path):
    gold = {
        "agg": "SELECT * FROM {{ gold.fct }}",
        "fct": "SELECT * FROM {{ silver.orders }} JOIN {{ gold.dim }}",
        "dim": "SELECT * FROM {{ silver.orders }}",
    }
    loaded = load_project(project(tmp_path, {"orders": GOOD.format(id="orders")}, gold))
    assert [g.name for g in loaded.gold_order()] == ["dim", "fct", "agg"]


def test_committed_json_schema_is_current(repo):
    committed = json.loads((repo / "docs" / "schema" / "dataset.schema.json").read_text())
    assert committed == dataset_json_schema()
    assert (
        cli(["schema", "--check", "--output", str(repo / "docs/schema/dataset.schema.json")]) == 0
    )


def test_json_schema_rejects_unknown_keys_for_editors():
    schema = dataset_json_schema()
    assert schema["additionalProperties"] is False
    assert {"id", "owner", "source", "columns", "primary_key"} <= set(schema["required"])
