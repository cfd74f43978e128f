"""Benchmark: 20 quality rules over TPC-H lineitem into silver, against the same write without.

Both runs happen in one process on one SparkSession, on the same bronze Delta table (the
lineitem CSV as strings, with lakeline's lineage columns), through the same silver code
(``silver.process_batch``: typing, built-in checks, quarantine, dedup by key, MERGE into an
empty silver table, metrics):

* without rules: the dataset has no contract and no quality rules (only the built-in key
  and type checks every silver write has);
* with rules: the same dataset plus 20 rules — 16 row-level (range, enum, regex, length,
  not null, SQL predicates) evaluated in one pass, and 4 dataset-level (row count, null
  percentage, composite uniqueness, freshness) in one aggregation.

Each variant runs ``--repeat`` times, alternating, into fresh tables; the best time of
each is compared. Prints both times and the ratio with / without (target: <= 1.3).

    uv sync --group bench && .venv/bin/python bench/quality_rules.py --scale 1
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

from lakeline import silver
from lakeline.environment import Environment
from lakeline.metadata import Dataset
from lakeline.session import local_session

HERE = Path(__file__).resolve().parent
COLUMNS = [
    ("l_orderkey", "bigint"),
    ("l_partkey", "bigint"),
    ("l_suppkey", "bigint"),
    ("l_linenumber", "int"),
    ("l_quantity", "decimal(15,2)"),
    ("l_extendedprice", "decimal(15,2)"),
    ("l_discount", "decimal(15,2)"),
    ("l_tax", "decimal(15,2)"),
    ("l_returnflag", "string"),
    ("l_linestatus", "string"),
    ("l_shipdate", "date"),
    ("l_commitdate", "date"),
    ("l_receiptdate", "date"),
    ("l_shipinstruct", "string"),
    ("l_shipmode", "string"),
    ("l_comment", "string"),
]
SHIPMODES = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"]
INSTRUCTIONS = ["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"]
RULES = [
    # 16 row rules
    {"name": "quantity_range", "check": "range", "column": "l_quantity", "min": 1, "max": 50},
    {
        "name": "price_positive",
        "check": "range",
        "column": "l_extendedprice",
        "min": 0,
        "min_exclusive": True,
    },
    {"name": "discount_range", "check": "range", "column": "l_discount", "min": 0, "max": 0.1},
    {"name": "tax_range", "check": "range", "column": "l_tax", "min": 0, "max": 0.08},
    {"name": "returnflag_enum", "check": "enum", "column": "l_returnflag", "values": list("RAN")},
    {"name": "linestatus_enum", "check": "enum", "column": "l_linestatus", "values": ["O", "F"]},
    {"name": "shipmode_enum", "check": "enum", "column": "l_shipmode", "values": SHIPMODES},
    {"name": "instruct_enum", "check": "enum", "column": "l_shipinstruct", "values": INSTRUCTIONS},
    {"name": "comment_length", "check": "length", "column": "l_comment", "max_length": 44},
    {"name": "shipmode_pattern", "check": "regex", "column": "l_shipmode", "pattern": "^[A-Z ]+$"},
    {
        "name": "shipdate_range",
        "check": "range",
        "column": "l_shipdate",
        "min": "1992-01-01",
        "max": "1998-12-31",
    },
    {"name": "received_after_ship", "check": "sql", "expression": "l_receiptdate >= l_shipdate"},
    {"name": "commitdate_present", "check": "not_null", "column": "l_commitdate"},
    {"name": "partkey_positive", "check": "range", "column": "l_partkey", "min": 1},
    {"name": "suppkey_positive", "check": "range", "column": "l_suppkey", "min": 1},
    {
        "name": "charge_not_negative",
        "check": "sql",
        "expression": "l_extendedprice * (1 - l_discount) * (1 + l_tax) >= 0",
        "action": "warn",
    },
    # 4 dataset rules
    {"name": "not_empty", "check": "row_count", "min": 1},
    {"name": "comment_nulls", "check": "null_percentage", "column": "l_comment", "max_percent": 1},
    {"name": "line_unique", "check": "unique", "columns": ["l_orderkey", "l_linenumber"]},
    {
        "name": "received_recently",
        "check": "freshness",
        "column": "l_receiptdate",
        "max_age": "20000d",
        "action": "warn",
    },
]


def dataset(rules: list[dict]) -> Dataset:
    return Dataset.model_validate(
        {
            "id": "lineitem",
            "owner": "bench",
            "source": {"format": "csv", "path": "lineitem"},
            "columns": [{"name": n, "type": t} for n, t in COLUMNS],
            "primary_key": ["l_orderkey", "l_linenumber"],
            "quality": rules,
        }
    )


def generate(scale: float, data: Path) -> Path:
    """lineitem as CSV under bench/data/sf<scale>/lineitem/ (shared with medallion_tpch.py)."""
    folder = data / f"sf{scale:g}" / "lineitem"
    if (folder / "lineitem.csv").is_file():
        return folder
    tool = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    tmp = data / f"sf{scale:g}" / "_gen_lineitem"
    tmp.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [tool, "csv", "-s", f"{scale:g}", "--tables", "lineitem", f"--output-dir={tmp}"],
        check=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (tmp / "lineitem.csv").rename(folder / "lineitem.csv")
    shutil.rmtree(tmp, ignore_errors=True)
    return folder


def run_once(spark, work: Path, label: str, ds: Dataset, bronze) -> tuple[float, dict]:
    env = Environment(
        catalog=f"bench_{label}",
        landing_root=str(work),
        checkpoint_root=str(work),
        unity_catalog=False,
    )
    for schema in ("silver", "quarantine", "ops"):
        spark.sql(f"DROP DATABASE IF EXISTS {env.schema(schema)} CASCADE")
    env.ensure_schemas(spark)
    silver.ensure_tables(spark, env, ds)
    report: dict = {}
    clock = time.perf_counter()
    counts = silver.process_batch(spark, env, ds, bronze, 0, f"bench-{label}", None, report)
    return time.perf_counter() - clock, {**counts, **report}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each variant")
    parser.add_argument("--data", default=str(HERE / "data"), help="generated data cache")
    parser.add_argument("--work", default=str(HERE / ".work" / "quality"), help="tables")
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    assert len(RULES) == 20

    source = generate(args.scale, Path(args.data))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    spark = local_session(
        work / "warehouse",
        app_name="lakeline-bench-quality",
        spark__driver__memory=args.driver_memory,
    )
    spark.sparkContext.setLogLevel("ERROR")
    raw = spark.read.option("header", "true").csv(str(source))
    bronze_name = "bench_bronze.lineitem"
    spark.sql("CREATE DATABASE IF NOT EXISTS bench_bronze")
    raw.select(
        "*",
        F.lit("bench").alias("_run_id"),
        F.input_file_name().alias("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
    ).write.format("delta").mode("overwrite").saveAsTable(bronze_name)
    bronze = spark.table(bronze_name)
    rows = bronze.count()
    print(f"lineitem SF{args.scale:g}: {rows:,} rows in bronze; {len(RULES)} rules", flush=True)

    variants = {"without_rules": dataset([]), "with_rules": dataset(RULES)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for attempt in range(args.repeat):
        for label, ds in variants.items():
            seconds, counts = run_once(spark, work, label, ds, bronze)
            times[label].append(seconds)
            print(
                f"  run {attempt + 1} {label:<14} {seconds:7.1f}s  read {counts['read']:,} "
                f"merged {counts['merged']:,} quarantined {counts['quarantined']:,} "
                f"warned {counts.get('warned', 0):,}",
                flush=True,
            )
    best = {k: min(v) for k, v in times.items()}
    ratio = best["with_rules"] / best["without_rules"]
    print(
        f"\nbest of {args.repeat}: without rules {best['without_rules']:.1f}s, "
        f"with 20 rules {best['with_rules']:.1f}s, ratio {ratio:.2f}x (target <= 1.3)"
    )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
