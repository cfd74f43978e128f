"""ODCS v3 contracts: parsing, errors naming file and field, conflicts with the metadata."""

import copy
import textwrap
from pathlib import Path

import pytest
import yaml

from lakeline.errors import MetadataError
from lakeline.metadata import load_project
from lakeline.quality import Action, Check

DATASET = """
id: orders
owner: sales-team
source: {format: csv, path: shop/orders}
columns:
  - {name: order_id}
  - {name: amount, source: order_amount}
  - {name: status}
  - {name: updated_at}
primary_key: [order_id]
sequence_column: updated_at
contract: contracts/orders.yml
"""

CONTRACT = {
    "apiVersion": "v3.2.0",
    "kind": "DataContract",
    "id": "c-orders",
    "version": "1.0.0",
    "status": "active",
    "team": {"name": "sales-team"},
    "schema": [
        {
            "name": "orders",
            "properties": [
                {
                    "name": "order_id",
                    "logicalType": "integer",
                    "physicalType": "bigint",
                    "primaryKey": True,
                    "primaryKeyPosition": 1,
                    "required": True,
                },
                {
                    "name": "amount",
                    "logicalType": "number",
                    "physicalType": "decimal(12,2)",
                    "logicalTypeOptions": {"minimum": 0, "exclusiveMaximum": 10000},
                },
                {
                    "name": "status",
                    "logicalType": "string",
                    "physicalType": "string",
                    "enum": [{"value": "placed"}, {"value": "shipped"}],
                    "logicalTypeOptions": {"pattern": "^[a-z]+$", "maxLength": 10},
                },
                {
                    "name": "updated_at",
                    "logicalType": "timestamp",
                    "physicalType": "timestamp",
                    "required": True,
                },
            ],
        }
    ],
}


def write_project(tmp_path: Path, dataset: str = DATASET, contract=None) -> Path:
    root = tmp_path / "metadata"
    (root / "datasets").mkdir(parents=True)
    (root / "contracts").mkdir()
    (root / "datasets" / "orders.yml").write_text(textwrap.dedent(dataset))
    if contract is not None:
        text = contract if isinstance(contract, str) else yaml.safe_dump(contract)
        (root / "contracts" / "orders.yml").write_text(text)
    return root


def problems(root: Path) -> list:
    with pytest.raises(MetadataError) as caught:
        load_project(root)
    return caught.value.problems


def with_change(change) -> dict:
    contract = copy.deepcopy(CONTRACT)
    change(contract)
    return contract


def test_the_sample_contracts_define_the_silver_schema(repo):
    project = load_project(repo / "src" / "metadata")
    for dataset in project.datasets.values():
        contract = dataset.compiled_contract
        assert contract is not None and contract.file.endswith(f"contracts/{dataset.id}.yml")
        assert [c.name for c in dataset.columns] == [c.name for c in contract.columns]
        assert [c.type for c in dataset.columns] == [c.type for c in contract.columns]
        assert dataset.primary_key == contract.primary_key
    orders = project.datasets["orders"].compiled_contract
    assert orders.column("shipping_fee").type == "decimal(12,2)"
    assert project.datasets["customers"].compiled_contract.column("email").pii


def test_the_contract_gives_types_nullability_and_rules(tmp_path):
    dataset = load_project(write_project(tmp_path, contract=CONTRACT)).datasets["orders"]
    assert [(c.name, c.type, c.nullable) for c in dataset.columns] == [
        ("order_id", "bigint", False),
        ("amount", "decimal(12,2)", True),
        ("status", "string", True),
        ("updated_at", "timestamp", False),
    ]
    assert dataset.column("amount").source_name == "order_amount"  # metadata keeps the mapping
    rules = {r.name: r for r in dataset.compiled_contract.rules}
    assert rules["amount.range"].min == 0 and rules["amount.range"].max == 10000
    assert rules["amount.range"].max_exclusive and not rules["amount.range"].min_exclusive
    assert rules["status.enum"].values == ["placed", "shipped"]
    assert rules["status.pattern"].check is Check.regex
    assert rules["status.length"].max_length == 10
    assert all(r.effective_action is Action.quarantine for r in rules.values())


def test_a_contract_survives_the_control_table_round_trip(tmp_path):
    from lakeline.metadata import Dataset

    dataset = load_project(write_project(tmp_path, contract=CONTRACT)).datasets["orders"]
    again = Dataset.model_validate_json(dataset.model_dump_json())
    assert again == dataset


def test_quality_entries_compile_to_rules(tmp_path):
    def change(c):
        obj = c["schema"][0]
        obj["quality"] = [
            {"metric": "rowCount", "mustBeBetween": [1, 100], "severity": "error"},
            {
                "name": "one_status_per_order",
                "metric": "duplicateValues",
                "mustBe": 0,
                "arguments": {"properties": ["order_id", "status"]},
            },
            {"type": "text", "description": "for humans only"},
            {"type": "custom", "engine": "soda", "implementation": "checks for orders: []"},
            {
                "name": "positive",
                "type": "custom",
                "engine": "lakeline",
                "implementation": {"check": "sql", "expression": "amount > 0"},
                "severity": "warning",
            },
        ]
        obj["properties"][1]["quality"] = [
            {"metric": "nullValues", "unit": "percent", "mustBeLessThan": 5, "severity": "warn"}
        ]
        obj["properties"][2]["quality"] = [
            {"metric": "invalidValues", "mustBe": 0, "arguments": {"validValues": ["placed"]}}
        ]
        c["slaProperties"] = [
            {"property": "latency", "value": 2, "unit": "d", "element": "orders.updated_at"}
        ]

    dataset = load_project(write_project(tmp_path, contract=with_change(change))).datasets["orders"]
    rules = {r.name: r for r in dataset.compiled_contract.rules}
    assert rules["orders.rowCount"].check is Check.row_count
    assert (rules["orders.rowCount"].min, rules["orders.rowCount"].max) == (1, 100)
    assert rules["orders.rowCount"].effective_action is Action.fail
    assert rules["one_status_per_order"].columns == ["order_id", "status"]
    assert rules["positive"].check is Check.sql
    assert rules["positive"].effective_action is Action.warn
    assert rules["amount.nullValues"].max_percent == pytest.approx(5)
    assert rules["status.invalidValues"].values == ["placed"]
    assert rules["updated_at.freshness"].max_age == "2d"
    assert rules["updated_at.freshness"].effective_action is Action.warn
    assert len(rules) == 10  # 4 from the properties' constraints, none from text or soda


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda c: c["schema"][0]["properties"][1].update(requird=True),
            "schema.0.properties.1",
            "unknown key",
        ),
        (lambda c: c.pop("version"), None, "'version' is a required property"),
        (
            lambda c: c["schema"][0]["properties"][1].pop("physicalType"),
            "schema.0.properties.1.physicalType",
            "give the column's type",
        ),
        (
            lambda c: c["schema"][0]["properties"][3].update(logicalType="date"),
            "schema.0.properties.3.logicalType",
            "does not match physicalType",
        ),
        (
            lambda c: c["schema"][0]["properties"][1].update(physicalType="money"),
            "schema.0.properties.1.physicalType",
            "unknown type 'money'",
        ),
        (lambda c: c["schema"][0].update(name="order"), "schema", "no schema object named"),
        (
            lambda c: c["schema"][0].update(
                quality=[{"metric": "rowCount", "mustBe": 1, "severity": "panic"}]
            ),
            "schema.0.quality.0.severity",
            "unknown severity 'panic'",
        ),
        (
            lambda c: c["schema"][0].update(
                quality=[{"type": "sql", "query": "SELECT 1", "mustBe": 1}]
            ),
            "schema.0.quality.0.type",
            "not run by lakeline",
        ),
        (
            lambda c: c["schema"][0]["properties"][1].update(
                logicalTypeOptions={"minimum": "lots"}
            ),
            "schema.0.properties.1.logicalTypeOptions.minimum",
            "is not of type 'number'",
        ),
    ],
)
def test_an_invalid_contract_names_its_file_and_field(tmp_path, change, field, message):
    found = problems(write_project(tmp_path, contract=with_change(change)))
    assert any(
        p.file == "metadata/contracts/orders.yml"
        and p.dataset == "orders"
        and p.field == field
        and message in p.message
        for p in found
    ), found


def test_a_missing_contract_file_is_named(tmp_path):
    [p] = problems(write_project(tmp_path, contract=None))
    assert (p.file, p.field) == ("metadata/datasets/orders.yml", "contract")
    assert "metadata/contracts/orders.yml does not exist" in p.message


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (
            lambda t: t.replace("primary_key: [order_id]", "primary_key: [order_id, status]"),
            "primary_key",
            "differs from the contract's ['order_id']",
        ),
        (
            lambda t: t.replace("  - {name: status}", "  - {name: status, type: int}"),
            "columns.2.type",
            "type int differs from the contract's physicalType string",
        ),
        (
            lambda t: t.replace("  - {name: status}", "  - {name: status, nullable: false}"),
            "columns.2.nullable",
            "contradicts the contract's required: false",
        ),
        (
            lambda t: t.replace("  - {name: status}", "  - {name: status}\n  - {name: coupon}"),
            "columns.3.name",
            "column 'coupon' is not in the contract",
        ),
        (
            lambda t: t.replace("owner: sales-team", "owner: someone-else"),
            "owner",
            "differs from the contract's team 'sales-team'",
        ),
    ],
)
def test_a_conflict_between_metadata_and_contract_is_a_load_error(tmp_path, edit, field, message):
    [p] = problems(write_project(tmp_path, edit(DATASET), CONTRACT))
    assert (p.file, p.dataset, p.field) == ("metadata/datasets/orders.yml", "orders", field)
    assert message in p.message and "metadata/contracts/orders.yml" in p.message


def test_agreeing_metadata_is_not_a_conflict(tmp_path):
    text = DATASET.replace("  - {name: status}", "  - {name: status, type: string}")
    text = text.replace(
        "  - {name: order_id}", "  - {name: order_id, type: bigint, nullable: false}"
    )
    assert load_project(write_project(tmp_path, text, CONTRACT)).datasets["orders"]


def test_metadata_rules_must_name_known_columns(tmp_path):
    text = DATASET + "quality:\n  - {name: q1, check: not_null, column: nope}\n"
    [p] = problems(write_project(tmp_path, text, CONTRACT))
    assert (p.field, p.message) == ("quality.0", "column 'nope' is not among the dataset's columns")


def test_a_reference_to_an_unknown_dataset_is_a_load_error(tmp_path):
    def change(c):
        c["schema"][0]["properties"][2]["relationships"] = [{"to": "statuses.code"}]

    [p] = problems(write_project(tmp_path, contract=with_change(change)))
    assert p.field == "rule status.references" and "statuses.code" in p.message
