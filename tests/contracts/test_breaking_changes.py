"""Breaking-change rules: each with a case that must be flagged and a near case that must not."""

import copy
import os
import shutil
import subprocess

import pytest
import yaml

from lakeline.cli import main as cli
from lakeline.contracts import compare_contracts, widens

BASE = {
    "apiVersion": "v3.2.0",
    "kind": "DataContract",
    "id": "c-orders",
    "version": "1.0.0",
    "schema": [
        {
            "name": "orders",
            "properties": [
                {
                    "name": "order_id",
                    "physicalType": "bigint",
                    "primaryKey": True,
                    "primaryKeyPosition": 1,
                },
                {
                    "name": "qty",
                    "physicalType": "int",
                    "logicalTypeOptions": {"minimum": 1},
                    "quality": [
                        {
                            "name": "qty_in_range",
                            "type": "custom",
                            "engine": "lakeline",
                            "implementation": {"check": "range", "min": 1, "max": 100},
                        }
                    ],
                },
                {
                    "name": "amount",
                    "physicalType": "decimal(12,2)",
                    "quality": [
                        {
                            "name": "amount_nulls",
                            "metric": "nullValues",
                            "mustBeLessOrEqualTo": 5,
                            "unit": "percent",
                        }
                    ],
                },
                {
                    "name": "status",
                    "physicalType": "string",
                    "enum": [{"value": "placed"}, {"value": "shipped"}],
                    "logicalTypeOptions": {"pattern": "^[a-z]+$", "maxLength": 10},
                },
                {
                    "name": "email",
                    "physicalType": "string",
                    "classification": "confidential",
                    "tags": ["pii"],
                },
                {
                    "name": "note",
                    "physicalType": "string",
                    "quality": [
                        {
                            "name": "note_nulls",
                            "metric": "nullValues",
                            "mustBeLessOrEqualTo": 50,
                            "unit": "percent",
                            "severity": "warning",
                        }
                    ],
                },
            ],
            "quality": [
                {
                    "name": "orders_rows",
                    "metric": "rowCount",
                    "mustBeBetween": [10, 1000],
                    "severity": "error",
                }
            ],
        }
    ],
}


def prop(contract, name):
    return next(p for p in contract["schema"][0]["properties"] if p["name"] == name)


def changed(edit):
    new = copy.deepcopy(BASE)
    edit(new)
    return new


def drop(name):
    return lambda c: c["schema"][0]["properties"].remove(prop(c, name))


def setp(name, **values):
    return lambda c: prop(c, name).update(values)


def opts(name, **values):
    return lambda c: prop(c, name).setdefault("logicalTypeOptions", {}).update(values)


def rename(old, new):
    return lambda c: prop(c, old).update(name=new)


def add(**column):
    return lambda c: c["schema"][0]["properties"].append(column)


def rule(name, where=None):
    """The quality entry ``name`` of column ``where`` (of the dataset when None)."""

    def find(c):
        entries = prop(c, where)["quality"] if where else c["schema"][0]["quality"]
        return next(e for e in entries if e["name"] == name)

    return find


def setq(name, where=None, **values):
    return lambda c: rule(name, where)(c).update(values)


def impl(name, where, **values):
    return lambda c: rule(name, where)(c)["implementation"].update(values)


def addq(where=None, **entry):
    def edit(c):
        target = prop(c, where) if where else c["schema"][0]
        target.setdefault("quality", []).append(entry)

    return edit


def both(*edits):
    def edit(c):
        for one in edits:
            one(c)

    return edit


EMAIL_FORMAT = {
    "name": "email_format",
    "type": "custom",
    "engine": "lakeline",
    "implementation": {"check": "regex", "pattern": "@"},
    "severity": "error",
}


# (rule, edit that must be flagged, near edit that must not be flagged)
CASES = [
    ("dataset removed", lambda c: c.update(schema=[]), lambda c: c.update(version="1.1.0")),
    ("column removed", drop("note"), add(name="coupon", physicalType="string")),
    ("rename = remove + add", rename("note", "remark"), setp("note", description="free text")),
    ("type narrowed", setp("qty", physicalType="smallint"), setp("qty", physicalType="bigint")),
    ("type changed", setp("qty", physicalType="string"), setp("qty", physicalType="double")),
    (
        "decimal scale without precision",
        setp("amount", physicalType="decimal(12,3)"),
        setp("amount", physicalType="decimal(13,3)"),
    ),
    (
        "decimal precision lowered",
        setp("amount", physicalType="decimal(10,2)"),
        setp("amount", physicalType="decimal(18,2)"),
    ),
    ("optional to required", setp("note", required=True), setp("note", required=False)),
    (
        "new required column",
        add(name="coupon", physicalType="string", required=True),
        add(name="coupon", physicalType="string"),
    ),
    ("minimum raised", opts("qty", minimum=2), opts("qty", minimum=0)),
    (
        "minimum added",
        opts("amount", minimum=0),
        lambda c: prop(c, "qty").pop("logicalTypeOptions"),
    ),
    ("maximum added", opts("qty", maximum=99), opts("qty", minimum=1)),
    (
        "enum value removed",
        setp("status", enum=[{"value": "placed"}]),
        setp("status", enum=[{"value": "placed"}, {"value": "shipped"}, {"value": "lost"}]),
    ),
    ("enum added", setp("note", enum=[{"value": "x"}]), lambda c: prop(c, "status").pop("enum")),
    (
        "pattern changed",
        opts("status", pattern="^[a-z_]+$"),
        lambda c: prop(c, "status")["logicalTypeOptions"].pop("pattern"),
    ),
    ("maxLength lowered", opts("status", maxLength=8), opts("status", maxLength=20)),
    ("minLength added", opts("status", minLength=2), opts("status", maxLength=10)),
    (
        "primary key changed",
        setp("qty", primaryKey=True, primaryKeyPosition=2),
        setp("order_id", description="the key"),
    ),
    (
        "PII classification removed",
        lambda c: prop(c, "email").pop("classification"),
        setp("email", classification="restricted"),
    ),
    (
        "classification lowered",
        setp("email", classification="public"),
        setp("note", classification="internal"),
    ),
    ("pii tag removed", setp("email", tags=[]), setp("email", tags=["pii", "contact"])),
    ("unique added", setp("email", unique=True), setp("email", description="contact")),
    # quality rules: stricter thresholds and actions break, looser ones and warnings do not
    (
        "row_count minimum raised",
        setq("orders_rows", mustBeBetween=[20, 1000]),
        setq("orders_rows", mustBeBetween=[5, 1000]),
    ),
    (
        "row_count maximum lowered",
        setq("orders_rows", mustBeBetween=[10, 500]),
        setq("orders_rows", mustBeBetween=[10, 5000]),
    ),
    (
        "null percentage lowered",
        setq("amount_nulls", "amount", mustBeLessOrEqualTo=1),
        setq("amount_nulls", "amount", mustBeLessOrEqualTo=10),
    ),
    (
        "null limit tightened on a fail rule, not on a warn rule",
        setq("amount_nulls", "amount", mustBeLessOrEqualTo=4.5),
        setq("note_nulls", "note", mustBeLessOrEqualTo=10),
    ),
    (
        "range maximum lowered",
        impl("qty_in_range", "qty", max=50),
        impl("qty_in_range", "qty", max=200),
    ),
    (
        "range minimum raised",
        impl("qty_in_range", "qty", min=2),
        impl("qty_in_range", "qty", min=0),
    ),
    (
        "range bound made exclusive",
        impl("qty_in_range", "qty", min_exclusive=True),
        lambda c: rule("qty_in_range", "qty")(c)["implementation"].pop("max"),
    ),
    (
        "action warn → fail",
        setq("note_nulls", "note", severity="error"),
        setq("orders_rows", severity="warning"),
    ),
    (
        "action quarantine → fail",
        setq("qty_in_range", "qty", severity="error"),
        setq("qty_in_range", "qty", severity="warning"),
    ),
    (
        "new fail rule on an existing column",
        addq("email", **EMAIL_FORMAT),
        addq("email", **{**EMAIL_FORMAT, "severity": "warning"}),
    ),
    (
        "new quarantine rule on an existing column",
        addq("email", **{k: v for k, v in EMAIL_FORMAT.items() if k != "severity"}),
        both(
            add(name="coupon", physicalType="string"),
            addq("coupon", **{**EMAIL_FORMAT, "name": "coupon_format"}),
        ),
    ),
    (
        "new dataset rule",
        addq(
            name="order_note_unique",
            metric="duplicateValues",
            mustBe=0,
            arguments={"properties": ["order_id", "note"]},
        ),
        lambda c: c["schema"][0].pop("quality"),
    ),
    (
        "rule check changed",
        impl("qty_in_range", "qty", check="sql", expression="qty > 0", min=None, max=None),
        setq("qty_in_range", "qty", description="a sane quantity"),
    ),
]


@pytest.mark.parametrize(("rule", "breaking", "near"), CASES, ids=[c[0] for c in CASES])
def test_breaking_rule_and_its_near_case(rule, breaking, near):
    flagged = [c for c in compare_contracts(BASE, changed(breaking)) if c.breaking]
    assert flagged, f"{rule}: not flagged"
    assert all(c.dataset == "orders" for c in flagged)
    allowed = [c for c in compare_contracts(BASE, changed(near)) if c.breaking]
    assert allowed == [], f"{rule}: near case flagged: {allowed}"


def test_changes_name_dataset_column_and_reason():
    changes = compare_contracts(BASE, changed(rename("note", "remark")))
    assert {(c.where, c.breaking) for c in changes} == {
        ("orders.note", True),
        ("orders.remark", False),
    }
    [removed] = [c for c in changes if c.breaking]
    assert "removed" in removed.reason and "rename" in removed.reason
    [narrowed] = compare_contracts(BASE, changed(setp("qty", physicalType="smallint")))
    assert narrowed.where == "orders.qty" and "int to smallint" in narrowed.reason


def test_quality_changes_name_dataset_column_rule_and_reason():
    [tightened] = compare_contracts(BASE, changed(impl("qty_in_range", "qty", max=50)))
    assert tightened.breaking and tightened.where == "orders.qty"
    assert tightened.reason == "quality rule 'qty_in_range': max lowered from 100 to 50"
    [stricter] = compare_contracts(BASE, changed(setq("note_nulls", "note", severity="error")))
    assert stricter.breaking and stricter.where == "orders.note"
    assert stricter.reason.startswith("quality rule 'note_nulls': action warn → fail")
    [loosened] = compare_contracts(BASE, changed(setq("orders_rows", mustBeBetween=[5, 1000])))
    assert not loosened.breaking and loosened.where == "orders"
    assert loosened.reason == "quality rule 'orders_rows': min lowered from 10 to 5"
    [warned] = compare_contracts(BASE, changed(setq("note_nulls", "note", mustBeLessOrEqualTo=9)))
    assert not warned.breaking and warned.reason.endswith("(warn only)")
    [removed] = compare_contracts(BASE, changed(lambda c: c["schema"][0].pop("quality")))
    assert not removed.breaking and removed.reason == "quality rule 'orders_rows' removed"
    [text] = compare_contracts(BASE, changed(setq("orders_rows", description="enough rows")))
    assert not text.breaking and "no rule changed" in text.reason


def test_widenings_follow_delta_type_widening():
    assert widens("int", "bigint") and widens("tinyint", "smallint") and widens("float", "double")
    assert widens("int", "double") and widens("int", "decimal(10,0)")
    assert widens("bigint", "decimal(20,0)") and not widens("bigint", "decimal(19,0)")
    assert widens("decimal(10,1)", "decimal(12,3)") and not widens("decimal(10,1)", "decimal(11,3)")
    assert not widens("bigint", "int") and not widens("bigint", "double")
    assert not widens("date", "timestamp") and not widens("string", "bigint")


@pytest.fixture
def git_repo(tmp_path, repo):
    """A git repository holding a copy of the sample metadata, committed on main."""
    work = tmp_path / "repo"
    shutil.copytree(repo / "src" / "metadata", work / "src" / "metadata")

    def git(*args):
        subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    return work


def run_check(work, capsys):
    cwd = os.getcwd()
    os.chdir(work)
    try:
        code = cli(["contracts-check", "--base", "main"])
    finally:
        os.chdir(cwd)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def edit_contract(work, edit):
    path = work / "src" / "metadata" / "contracts" / "orders.yml"
    contract = yaml.safe_load(path.read_text())
    edit(contract)
    path.write_text(yaml.safe_dump(contract, sort_keys=False))


def test_cli_fails_on_a_breaking_change_and_names_it(git_repo, capsys):
    assert run_check(git_repo, capsys)[0] == 0
    edit_contract(
        git_repo, lambda c: prop(c, "shipping_fee")["logicalTypeOptions"].update(minimum=1)
    )
    code, out = run_check(git_repo, capsys)
    assert code == 1
    assert "BREAKING  orders.shipping_fee: minimum raised from 0 to 1" in out
    assert "1 breaking change(s)" in out


def test_cli_fails_on_a_new_fail_rule_on_an_existing_column(git_repo, capsys):
    fee = {
        "name": "fee_not_negative",
        "type": "custom",
        "engine": "lakeline",
        "implementation": {"check": "range", "min": 0},
    }
    edit_contract(git_repo, addq("shipping_fee", **{**fee, "severity": "warning"}))
    code, out = run_check(git_repo, capsys)
    assert code == 0 and "quality rule 'fee_not_negative' added (warn only)" in out
    edit_contract(git_repo, setq("fee_not_negative", "shipping_fee", severity="error"))
    code, out = run_check(git_repo, capsys)
    assert code == 1
    assert (
        "BREAKING  orders.shipping_fee: quality rule 'fee_not_negative' added with action "
        "fail: batches that were written may now stop the dataset" in out
    )


def test_cli_stops_at_a_contract_that_contradicts_the_metadata(git_repo, capsys):
    edit_contract(git_repo, lambda c: prop(c, "shipping_fee").update(physicalType="decimal(10,2)"))
    code, out = run_check(git_repo, capsys)
    assert code == 2 and "differs from the contract's physicalType decimal(10,2)" in out


def test_cli_reports_but_allows_a_breaking_change_with_a_major_bump(git_repo, capsys):
    def edit(c):
        c["schema"][0]["properties"].remove(prop(c, "sales_channel"))
        c["version"] = "2.0.0"

    edit_contract(git_repo, edit)
    # The metadata must follow the contract, or the check stops at the load-time conflict.
    dataset = git_repo / "src" / "metadata" / "datasets" / "orders.yml"
    text = dataset.read_text()
    start = text.index("  - name: sales_channel")
    end = text.index("  - name: shipping_fee")
    dataset.write_text(text[:start] + text[end:])
    code, out = run_check(git_repo, capsys)
    assert code == 0
    assert "orders.sales_channel: column removed" in out and "major version bump" in out


def test_cli_lists_non_breaking_changes_as_information(git_repo, capsys):
    edit_contract(git_repo, lambda c: prop(c, "order_status")["enum"].append({"value": "lost"}))
    code, out = run_check(git_repo, capsys)
    assert code == 0 and "info      orders.order_status: enum value(s) added: ['lost']" in out
