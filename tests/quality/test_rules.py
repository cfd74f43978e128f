"""The quality engine: every rule type and action, NULL semantics, several failures per row."""

from datetime import datetime

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import silver
from lakeline.metadata import Dataset
from lakeline.quality import Action, QualityError, Rule, RuleSet
from lakeline.runlog import StepResult, logged_step

COLUMNS = ("id", "qty", "code", "price", "day", "updated_at")
BRONZE = T.StructType(
    [T.StructField(n, T.StringType()) for n in COLUMNS]
    + [
        T.StructField("_run_id", T.StringType()),
        T.StructField("_source_file", T.StringType()),
        T.StructField("_ingested_at", T.TimestampType()),
    ]
)
T0 = datetime(2024, 3, 1, 12, 0)


def dataset(*rules: dict, **extra) -> Dataset:
    return Dataset.model_validate(
        {
            "id": "lines",
            "owner": "team",
            "source": {"format": "csv", "path": "shop/lines"},
            "columns": [
                {"name": "id", "type": "bigint", "nullable": False},
                {"name": "qty", "type": "int"},
                {"name": "code", "type": "string"},
                {"name": "price", "type": "decimal(10,2)"},
                {"name": "day", "type": "date"},
                {"name": "updated_at", "type": "timestamp", "nullable": False},
            ],
            "primary_key": ["id"],
            "sequence_column": "updated_at",
            "quality": list(rules),
            **extra,
        }
    )


def row(id_, qty="1", code="a", price="1.00", day="2024-03-01", updated="2024-03-01T10:00:00"):
    return (id_, qty, code, price, day, updated, "r", "f.csv", T0)


def bronze(spark, rows):
    return spark.createDataFrame(rows, BRONZE)


def failed_by_id(spark, ds, rows):
    checked = RuleSet.of(ds).evaluate(bronze(spark, rows)).collect()
    return {str(r["id"]): (r["_failed_rules"], r["_reasons"], r["__warned"]) for r in checked}


ROW_RULES = [
    ({"check": "not_null", "column": "code"}, row("1"), row("2", code=None)),
    ({"check": "range", "column": "qty", "min": 1, "max": 10}, row("1", qty="10"), row("2", "11")),
    (
        {"check": "range", "column": "qty", "min": 0, "min_exclusive": True},
        row("1", qty="1"),
        row("2", qty="0"),
    ),
    (
        {"check": "range", "column": "day", "min": "2024-01-01"},
        row("1", day="2024-01-01"),
        row("2", day="2023-12-31"),
    ),
    (
        {"check": "range", "column": "price", "max": "99.99"},
        row("1", price="99.99"),
        row("2", price="100.00"),
    ),
    ({"check": "enum", "column": "code", "values": ["a", "b"]}, row("1"), row("2", code="c")),
    ({"check": "regex", "column": "code", "pattern": "^[a-z]$"}, row("1"), row("2", code="ab")),
    ({"check": "length", "column": "code", "max_length": 2}, row("1"), row("2", code="abc")),
    ({"check": "sql", "expression": "qty * price < 100"}, row("1"), row("2", "20", price="9.99")),
]


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    ROW_RULES,
    ids=[f"{r[0]['check']}-{i}" for i, r in enumerate(ROW_RULES)],
)
def test_each_row_rule_type_quarantines_only_failing_rows(spark, spec, good, bad):
    ds = dataset({"name": "r", **spec})
    found = failed_by_id(spark, ds, [good, bad])
    assert found["1"][0] == []
    assert found["2"][0] == ["r"]
    assert found["2"][1] == [Rule(name="r", **spec).reason()]


def test_cast_failure_is_a_rule_with_its_reason(spark):
    found = failed_by_id(spark, dataset(), [row("1", price="4,99")])
    assert found["1"][0] == ["price.type"]
    assert found["1"][1] == ["column 'price': value does not fit type decimal(10,2)"]


def test_null_counts_as_failure_but_constraints_let_missing_values_through(spark):
    ds = dataset(
        {"name": "cheap", "check": "sql", "expression": "qty * price < 100"},
        {"name": "qty_range", "check": "range", "column": "qty", "min": 1},
        {"name": "code_enum", "check": "enum", "column": "code", "values": ["a"]},
    )
    found = failed_by_id(spark, ds, [row("1", qty=None, code=None)])
    # qty is NULL: the SQL predicate is NULL, which fails; range and enum accept a NULL.
    assert found["1"][0] == ["cheap"]


def test_a_row_failing_several_rules_carries_every_one(spark):
    ds = dataset(
        {"name": "qty_range", "check": "range", "column": "qty", "min": 1},
        {"name": "code_enum", "check": "enum", "column": "code", "values": ["a"]},
        {
            "name": "code_hint",
            "check": "length",
            "column": "code",
            "max_length": 1,
            "action": "warn",
        },
        {"name": "cheap", "check": "sql", "expression": "price < 5"},
    )
    found = failed_by_id(spark, ds, [row("1", qty="0", code="zz", price="9.00", day="x")])
    failed, reasons, warned = found["1"]
    assert failed == ["day.type", "qty_range", "code_enum", "cheap"]
    assert len(reasons) == 4 and reasons[0] == "column 'day': value does not fit type date"
    assert warned  # the warn rule counts, but does not quarantine


def test_a_bad_sql_rule_is_named_in_the_error(spark):
    ds = dataset({"name": "broken", "check": "sql", "expression": "no_such_column > 1"})
    with pytest.raises(Exception, match="rule 'broken'"):
        RuleSet.of(ds).evaluate(bronze(spark, [row("1")]))


def test_rule_model_rejects_fields_that_do_not_fit():
    with pytest.raises(ValueError, match="'pattern' does not apply to a range rule"):
        Rule(name="x", check="range", column="qty", min=1, pattern="a")
    with pytest.raises(ValueError, match="needs 'max' or 'min'"):
        Rule(name="x", check="range", column="qty")
    with pytest.raises(ValueError, match="its action is warn or fail"):
        Rule(name="x", check="row_count", min=1, action="quarantine")
    assert Rule(name="x", check="unique", column="code").effective_action is Action.fail
    assert Rule(name="x", check="not_null", column="code").effective_action is Action.quarantine


# --------------------------------------------------------------------------- dataset level

DATASET_RULES = [
    ({"check": "row_count", "min": 2}, [row("1"), row("2")], [row("1")]),
    ({"check": "row_count", "max": 1}, [row("1")], [row("1"), row("2")]),
    (
        {"check": "null_percentage", "column": "code", "max_percent": 50},
        [row("1"), row("2", code=None)],
        [row("1", code=None), row("2", code=None), row("3")],
    ),
    (
        {"check": "null_percentage", "column": "code", "max_rows": 0},
        [row("1")],
        [row("1", code=None)],
    ),
    (
        {"check": "unique", "column": "code"},
        # key 1 twice (two versions, same code) is one row after dedup: still unique
        [row("1", code="a"), row("1", code="a", updated="2024-03-02T00:00:00"), row("2", code="b")],
        [row("1", code="a"), row("2", code="a")],
    ),
    (
        {"check": "unique", "columns": ["code", "day"]},
        [row("1", code="a"), row("2", code="a", day="2024-03-02")],
        [row("1", code="a"), row("2", code="a")],
    ),
    (
        {"check": "freshness", "column": "updated_at", "max_age": "3650d"},
        [row("1")],
        [row("1", updated="1999-01-01T00:00:00")],
    ),
    (
        {"check": "freshness", "column": "day", "max_age": "3d"},
        [row("1", day=datetime.now().date().isoformat())],
        [row("1", day=None)],  # no value at all: NULL is not fresh
    ),
]


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    DATASET_RULES,
    ids=[f"{r[0]['check']}-{i}" for i, r in enumerate(DATASET_RULES)],
)
def test_dataset_rules_in_one_aggregation(spark, env, spec, good, bad):
    ds = dataset({"name": "d", "action": "warn", **spec})
    rules = RuleSet.of(ds)
    ok = rules.measure(spark, env, rules.evaluate(bronze(spark, good)))
    assert [o.passed for o in ok.outcomes if o.rule.name == "d"] == [True]
    ko = rules.measure(spark, env, rules.evaluate(bronze(spark, bad)))
    [outcome] = [o for o in ko.outcomes if o.rule.name == "d"]
    assert not outcome.passed and ko.failures(Action.warn) == [outcome]


def test_unique_holds_across_the_rows_already_in_silver(spark, env):
    """A value stored under another key is a duplicate; a key keeping its own is not."""
    ds = dataset({"name": "code_unique", "check": "unique", "column": "code", "action": "warn"})
    rules = RuleSet.of(ds)
    silver.ensure_tables(spark, env, ds)
    silver.process_batch(spark, env, ds, bronze(spark, [row("1", code="a")]), 0, "r1", rules)

    def duplicates(rows) -> int:
        measured = rules.measure(spark, env, rules.evaluate(bronze(spark, rows)))
        [outcome] = [o for o in measured.outcomes if o.rule.name == "code_unique"]
        return outcome.failed

    later = "2024-03-02T10:00:00"
    assert duplicates([row("2", code="a")]) == 1  # 'a' is key 1's in silver
    assert duplicates([row("1", code="a", updated=later)]) == 0  # key 1 keeps its own value
    # Key 1 gives 'a' up in the same batch that key 2 takes it: unique after the merge.
    assert duplicates([row("1", code="b", updated=later), row("2", code="a")]) == 0
    assert duplicates([row("2", code=None), row("3", code=None)]) == 0  # NULL is no value


def test_referential_integrity_against_another_datasets_silver(spark, env):
    codes = spark.createDataFrame([("a",), ("b",)], "code STRING")
    codes.write.format("delta").saveAsTable(env.table("silver", "codes"))
    ds = dataset(
        {"name": "fk", "check": "references", "column": "code", "references": "codes.code"}
    )
    rules = RuleSet.of(ds)
    rows = [
        row("1", code="a"),
        row("2", code="z"),
        row("3", code=None),
        row("4", code="z", qty="x"),
    ]
    measured = rules.measure(spark, env, rules.evaluate(bronze(spark, rows)))
    [fk] = [o for o in measured.outcomes if o.rule.name == "fk"]
    # 'z' of row 2 is missing; NULL has nothing to refer to; row 4 is quarantined anyway.
    assert (fk.failed, fk.evaluated, fk.passed) == (1, 3, False)


# --------------------------------------------------------------------------- actions, writes


def _versions(spark, env, ds):
    return [
        DeltaTable.forName(spark, table).history(1).first()["version"]
        for table in (silver.silver_table(env, ds), silver.quarantine_table(env, ds))
    ]


def test_warn_quarantine_and_reconciliation_with_metrics(spark, env):
    ds = dataset(
        {"name": "qty_range", "check": "range", "column": "qty", "min": 1},
        {"name": "code_enum", "check": "enum", "column": "code", "values": ["a"], "action": "warn"},
        {"name": "two_rows", "check": "row_count", "min": 2},
    )
    silver.ensure_tables(spark, env, ds)
    rows = [
        row("1"),
        row("1", updated="2024-03-02T00:00:00"),  # newer version of key 1
        row("2", code="b"),  # warned: reaches silver
        row("3", qty="0", code="c"),  # quarantined (and warned)
    ]
    report: dict = {}
    counts = silver.process_batch(spark, env, ds, bronze(spark, rows), 0, "run-1", None, report)
    assert counts["read"] == counts["merged"] + counts["quarantined"] + counts["duplicates"]
    assert (counts["read"], counts["quarantined"], counts["duplicates"], counts["merged"]) == (
        4,
        1,
        1,
        2,
    )
    assert report["warned"] == 2
    assert report["failed_rules"] == {"qty_range": 1, "code_enum": 2}
    assert sorted(r.id for r in spark.table(silver.silver_table(env, ds)).collect()) == [1, 2]
    [quarantined] = spark.table(silver.quarantine_table(env, ds)).collect()
    assert quarantined.failed_rules == ["qty_range"] and quarantined.quarantine_id
    metrics = {
        r.rule: r
        for r in spark.table(env.table("ops", "dq_metrics")).where("run_id = 'run-1'").collect()
    }
    assert (metrics["qty_range"].rows_failed, metrics["qty_range"].action) == (1, "quarantine")
    assert (metrics["code_enum"].rows_failed, metrics["code_enum"].action) == (2, "warn")
    assert metrics["two_rows"].passed and metrics["two_rows"].level == "dataset"
    assert metrics["id.type"].rows_evaluated == 4 and metrics["id.type"].passed


OBSERVABLE_RULES = (
    {"name": "qty_range", "check": "range", "column": "qty", "min": 1},
    {"name": "code_enum", "check": "enum", "column": "code", "values": ["a"], "action": "warn"},
    {
        "name": "code_present",
        "check": "null_percentage",
        "column": "code",
        "max_percent": 10,
        "action": "warn",
    },
)
FIRST_LOAD = [
    row("1"),
    row("1", updated="2024-03-02T00:00:00"),  # newer version of key 1
    row("2", code="b"),  # warned
    row("3", qty="0", code="c"),  # quarantined (and warned)
    row("4", code=None),  # warned by the null percentage
]


def _outcome(spark, env, ds, run_id):
    table = spark.table(env.table("ops", "dq_metrics")).where(F.col("run_id") == run_id)
    metrics = {
        r.rule: (r.rows_evaluated, r.rows_failed, r.observed, r.passed) for r in table.collect()
    }
    quarantine = spark.table(silver.quarantine_table(env, ds))
    return (
        sorted(spark.table(silver.silver_table(env, ds)).drop("_ingested_at").collect()),
        sorted(quarantine.select("record", "reasons", "failed_rules").collect()),
        metrics,
    )


def test_a_first_load_counts_its_rules_while_it_is_written(spark, env, monkeypatch):
    """Into an empty silver table, rules that cannot stop the batch are counted on the append
    itself (an observation), with no counting pass of their own: the counts, the quarantine
    and the metrics are those the counting pass gives."""
    observed = dataset(*OBSERVABLE_RULES)
    # The same rules and a fail rule that passes, which needs the counting pass first.
    counted = dataset(
        *OBSERVABLE_RULES, {"name": "some_rows", "check": "row_count", "min": 1}, id="counted"
    )
    assert RuleSet.of(observed).observable and not RuleSet.of(counted).observable
    reports: list[dict] = [{}, {}]
    results = []
    for ds, report, run_id in ((counted, reports[0], "run-c"), (observed, reports[1], "run-o")):
        silver.ensure_tables(spark, env, ds)
        if ds is observed:
            monkeypatch.setattr(RuleSet, "measure", lambda *a, **k: pytest.fail("counted"))
        batch = bronze(spark, FIRST_LOAD)
        results.append(silver.process_batch(spark, env, ds, batch, 0, run_id, None, report))
    assert (
        results[0]
        == results[1]
        == {
            "read": 5,
            "quarantined": 1,
            "duplicates": 1,
            "merged": 3,
            "inserted": 3,
            "updated": 0,
            "stale": 0,
        }
    )
    assert (
        reports[0]
        == reports[1]
        == {
            "warned": 2,  # an enum accepts NULL
            "failed_rules": {"qty_range": 1, "code_enum": 2, "code_present": 1},
        }
    )
    with_pass, without = (
        _outcome(spark, env, counted, "run-c"),
        _outcome(spark, env, observed, "run-o"),
    )
    assert with_pass[:2] == without[:2]
    assert with_pass[2].pop("some_rows")[3] is True
    assert with_pass[2] == without[2]
    assert without[2]["code_present"] == (5, 1, 20.0, False)


def test_a_first_load_stopped_before_its_quarantine_is_finished_by_the_replay(
    spark, env, monkeypatch
):
    """Silver appended, then a crash before the quarantine write: replaying the batch
    MERGEs onto the silver table (changing nothing) and writes the quarantine."""
    ds = dataset(*OBSERVABLE_RULES)
    silver.ensure_tables(spark, env, ds)
    with monkeypatch.context() as patched:
        patched.setattr(silver, "write_quarantine", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            silver.process_batch(spark, env, ds, bronze(spark, FIRST_LOAD), 0, "run-1")
    stored = sorted(spark.table(silver.silver_table(env, ds)).collect())
    assert [r.id for r in stored] == [1, 2, 4]
    assert spark.table(silver.quarantine_table(env, ds)).count() == 0
    counts = silver.process_batch(spark, env, ds, bronze(spark, FIRST_LOAD), 0, "run-1")
    assert (counts["read"], counts["quarantined"], counts["duplicates"]) == (5, 1, 1)
    assert counts["inserted"] == 0
    assert sorted(spark.table(silver.silver_table(env, ds)).collect()) == stored
    [quarantined] = spark.table(silver.quarantine_table(env, ds)).collect()
    assert quarantined.failed_rules == ["qty_range"]


def test_a_fail_rule_stops_the_batch_before_anything_is_written(spark, env):
    ds = dataset(
        {"name": "no_free_items", "check": "sql", "expression": "price > 0", "action": "fail"},
        {"name": "qty_range", "check": "range", "column": "qty", "min": 1},
    )
    silver.ensure_tables(spark, env, ds)
    before = _versions(spark, env, ds)
    rows = [row("1"), row("2", price="0.00"), row("3", price="0.00", qty="0")]
    report: dict = {}
    with pytest.raises(QualityError) as caught:
        silver.process_batch(spark, env, ds, bronze(spark, rows), 0, "run-f", None, report)
    assert "rule 'no_free_items'" in str(caught.value) and "failed on 2 of 3 rows" in str(
        caught.value
    )
    assert _versions(spark, env, ds) == before  # neither silver nor quarantine changed
    assert report["stopped_by"] == [
        {"rule": "no_free_items", "rows_failed": 2, "rows_evaluated": 3}
    ]
    [metric] = (
        spark.table(env.table("ops", "dq_metrics"))
        .where("run_id = 'run-f' AND rule = 'no_free_items'")
        .collect()
    )
    assert (metric.passed, metric.rows_failed, metric.action) == (False, 2, "fail")


def test_a_failed_silver_step_says_which_rule_and_how_many_rows_in_the_run_log(spark, env):
    import json

    from lakeline.bronze import bronze_table

    ds = dataset({"name": "enough", "check": "row_count", "min": 5})
    bronze(spark, [row("1"), row("2")]).write.format("delta").saveAsTable(bronze_table(env, ds))
    silver.ensure_tables(spark, env, ds)
    before = _versions(spark, env, ds)
    step = logged_step(spark, env, "run-x", ds.id, "silver")
    with pytest.raises(Exception, match="rule 'enough'"), step as result:
        silver.transform(spark, env, ds, "run-x", result)
    assert _versions(spark, env, ds) == before
    [log] = spark.table(env.table("ops", "run_log")).where("run_id = 'run-x'").collect()
    assert log.status == "failed" and "rule 'enough'" in log.error and "2 of 2 rows" in log.error
    details = json.loads(log.details)
    assert details["stopped_by"] == [{"rule": "enough", "rows_failed": 2, "rows_evaluated": 2}]
    assert isinstance(result, StepResult)


def test_metrics_are_appended_alongside_the_block_and_their_error_is_not_lost(monkeypatch):
    """The metrics append runs while the block (the MERGE) does, is finished when the block
    is, and raises its own error unless the block raised one."""
    import threading

    from lakeline import quality

    started, merged = threading.Event(), threading.Event()

    def record(*args):
        started.set()
        assert merged.wait(10), "the block never ran while the metrics were appended"

    monkeypatch.setattr(quality, "record_metrics", record)
    with quality.metrics_alongside(None, None, None, "r", 0, None):
        assert started.wait(10)
        merged.set()

    def broken(*args):
        raise RuntimeError("metrics table unreachable")

    monkeypatch.setattr(quality, "record_metrics", broken)
    alongside = quality.metrics_alongside(None, None, None, "r", 0, None)
    with pytest.raises(RuntimeError, match="unreachable"), alongside:
        pass
    alongside = quality.metrics_alongside(None, None, None, "r", 0, None)
    with pytest.raises(KeyError, match="the merge failed"), alongside:
        raise KeyError("the merge failed")
