"""Benchmark: a 1 % change feed applied to TPC-H orders, lakeline CDC vs a hand-written MERGE.

One process, one SparkSession, the same change rows for every path:

* the feed: 0.6 % of the orders updated, 0.2 % deleted, 0.2 % new orders (op I/U/D and a
  ``changed_at`` sequence), as string columns in a bronze table, like a landed CSV;
* plain Spark: read the bronze rows, cast, keep the latest change per key, one Delta MERGE
  (delete / update when newer / insert) into a copy of the orders;
* lakeline SCD1: the silver step of a ``load: cdc`` dataset (stream of bronze with a
  checkpoint, quality rules and quarantine, reduction per key, MERGE, tombstones);
* lakeline SCD2: the same changes into an SCD2 copy (validity from ``changed_at``).

Prints the times and the ratio lakeline / plain (target for SCD1: <= 1.2), and checks that
plain and lakeline SCD1 end with the same rows.

    uv sync --group bench && .venv/bin/python bench/cdc_merge.py --scale 1 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from statistics import median

from pyspark.sql import Window
from pyspark.sql import functions as F

from lakeline import silver
from lakeline.datatypes import parse_type
from lakeline.environment import Environment
from lakeline.metadata import Dataset
from lakeline.runlog import StepResult
from lakeline.session import local_session

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from medallion_tpch import TABLES, generate  # noqa: E402

KEY, COLUMNS = TABLES["orders"]
COLUMNS = [*COLUMNS, ("changed_at", "timestamp")]


def dataset(dataset_id: str, scd: int) -> Dataset:
    return Dataset.model_validate(
        {
            "id": dataset_id,
            "owner": "bench",
            "source": {"format": "csv", "path": dataset_id},
            "load": {"type": "cdc"},
            "cdc": {
                "operation_column": "op",
                "insert_values": ["I"],
                "update_values": ["U"],
                "delete_values": ["D"],
                "sequence_by": ["changed_at"],
            },
            "scd": {"type": scd},
            "columns": [{"name": n, "type": t} for n, t in COLUMNS],
            "primary_key": KEY,
        }
    )


def prepare(spark, env: Environment, source: Path, tag: str, plain_dv: bool):
    """The orders as of day 1, and a 1 % change feed as a bronze table per dataset."""
    raw = spark.read.option("header", "true").csv(str(source / "orders"))
    base = raw.select(
        *[F.col(n).cast(parse_type(t)).alias(n) for n, t in COLUMNS[:-1]],
        F.lit("2024-01-01 00:00:00").cast("timestamp").alias("changed_at"),
    ).cache()
    top = base.agg(F.max("o_orderkey")).first()[0]
    bucket = F.col("o_orderkey") % 1000
    at = (F.lit(1704153600) + F.col("o_orderkey") % 86400).cast("timestamp")  # 2024-01-02
    updates = base.where(bucket < 6).select(
        F.lit("U").alias("op"),
        *[c for c, _ in COLUMNS[:-1] if c not in ("o_totalprice", "o_orderstatus")],
        (F.col("o_totalprice") + 1).alias("o_totalprice"),
        F.lit("U").alias("o_orderstatus"),
        at.alias("changed_at"),
    )
    deletes = base.where((bucket >= 6) & (bucket < 8)).select(
        F.lit("D").alias("op"), *[c for c, _ in COLUMNS[:-1]], at.alias("changed_at")
    )
    inserts = base.where((bucket >= 8) & (bucket < 10)).select(
        F.lit("I").alias("op"),
        (F.col("o_orderkey") + top).alias("o_orderkey"),
        *[c for c, _ in COLUMNS[1:-1]],
        at.alias("changed_at"),
    )
    feed = updates.unionByName(deletes).unionByName(inserts)
    feed = feed.select(
        *[F.col(c).cast("string").alias(c) for c in feed.columns],
        F.lit(f"bench-{tag}").alias("_run_id"),
        F.lit("feed.csv").alias("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
    )
    changes = feed.count()
    for ds in (dataset("orders_scd1", 1), dataset("orders_scd2", 2)):
        feed.write.format("delta").mode("overwrite").saveAsTable(env.table("bronze", ds.id))
        silver.ensure_tables(spark, env, ds)
        rows = base.select("*", F.lit("base.csv").alias("_source_file"), F.current_timestamp())
        rows = rows.withColumnRenamed("current_timestamp()", "_ingested_at")
        if ds.scd.type == 2:
            rows = rows.select(
                "*",
                F.col("changed_at").alias("_valid_from"),
                F.lit(None).cast("timestamp").alias("_valid_to"),
                F.lit(True).alias("_is_current"),
            )
        rows.write.format("delta").mode("append").saveAsTable(silver.silver_table(env, ds))
    plain_table = env.table("gold", "plain_orders")
    options = {"delta.enableDeletionVectors": "true"} if plain_dv else {}
    base.write.format("delta").mode("overwrite").options(**options).saveAsTable(plain_table)
    count = base.count()
    base.unpersist()
    return count, changes, plain_table


def plain_merge(spark, env: Environment, plain_table: str) -> None:
    """What a hand-written CDC job does: cast, latest change per key, one MERGE."""
    from delta.tables import DeltaTable

    feed = spark.table(env.table("bronze", "orders_scd1"))
    typed = feed.select("op", *[F.col(n).cast(parse_type(t)).alias(n) for n, t in COLUMNS])
    latest = Window.partitionBy(*KEY).orderBy(F.col("changed_at").desc())
    changes = typed.withColumn("_rank", F.row_number().over(latest)).where("_rank = 1")
    values = {n: F.col(f"s.{n}") for n, _ in COLUMNS}
    (
        DeltaTable.forName(spark, plain_table)
        .alias("t")
        .merge(changes.alias("s"), "t.o_orderkey = s.o_orderkey")
        .whenMatchedDelete("s.op = 'D' AND s.changed_at >= t.changed_at")
        .whenMatchedUpdate("s.op <> 'D' AND s.changed_at >= t.changed_at", set=values)
        .whenNotMatchedInsert("s.op <> 'D'", values=values)
        .execute()
    )


def lakeline(spark, env: Environment, ds: Dataset, tag: str) -> StepResult:
    result = StepResult(ds.id, "silver")
    silver.transform(spark, env, ds, f"bench-{tag}", result)
    return result


def timed(fn, *args) -> float:
    clock = time.perf_counter()
    fn(*args)
    return time.perf_counter() - clock


def run(
    spark, work: Path, source: Path, tag: str, plain_dv: bool
) -> tuple[float, float, float, dict]:
    env = Environment(
        catalog=f"cdc_{tag}",
        landing_root=str(work / tag / "landing"),
        checkpoint_root=str(work / tag / "checkpoints"),
        unity_catalog=False,
    )
    env.ensure_schemas(spark)
    rows, changes, plain_table = prepare(spark, env, source, tag, plain_dv)
    plain = timed(plain_merge, spark, env, plain_table)
    clock = time.perf_counter()
    scd1 = lakeline(spark, env, dataset("orders_scd1", 1), tag)
    ours = time.perf_counter() - clock
    clock = time.perf_counter()
    lakeline(spark, env, dataset("orders_scd2", 2), tag)
    scd2 = time.perf_counter() - clock
    columns = [n for n, _ in COLUMNS]
    mine = spark.table(silver.silver_table(env, dataset("orders_scd1", 1))).select(*columns)
    theirs = spark.table(plain_table).select(*columns)
    same = mine.exceptAll(theirs).isEmpty() and theirs.exceptAll(mine).isEmpty()
    facts = {"rows": rows, "changes": changes, "same": same, "details": scd1.details}
    return plain, ours, scd2, facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--work", type=Path, default=HERE / ".work" / "cdc")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument(
        "--plain-deletion-vectors",
        action="store_true",
        help="give the hand-written MERGE's table deletion vectors too, as lakeline's silver "
        "tables have by default (dataset setting deletion_vectors)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure this many times and end with the medians (one run's ratio moves a lot "
        "on a small shared machine)",
    )
    args = parser.parse_args()

    source = generate(args.scale, args.data)
    warmup = generate(0.01, args.data)
    if args.work.exists():
        shutil.rmtree(args.work)
    spark = local_session(
        args.work / "warehouse",
        app_name="lakeline-bench-cdc",
        spark__driver__memory=args.driver_memory,
        spark__sql__shuffle__partitions="8",
    )
    spark.sparkContext.setLogLevel("ERROR")
    dv = args.plain_deletion_vectors
    run(spark, args.work, warmup, "warmup", dv)  # JIT and first-use costs, for both paths
    results = []
    for repeat in range(args.repeat):
        plain, ours, scd2, facts = run(spark, args.work, source, f"real{repeat}", dv)
        if repeat == 0:
            print(
                f"orders SF{args.scale:g}: {facts['rows']} rows, {facts['changes']} changes (1 %)"
            )
        if args.repeat > 1:
            print(f"-- repeat {repeat + 1} of {args.repeat}")
        print(f"plain MERGE      {plain:8.1f}s   (deletion vectors: {'on' if dv else 'off'})")
        print(f"lakeline SCD1    {ours:8.1f}s   ratio {ours / plain:.2f}")
        print(f"lakeline SCD2    {scd2:8.1f}s   ratio {scd2 / plain:.2f}")
        print(f"SCD1 equals plain MERGE: {facts['same']}")
        if not facts["same"]:
            spark.stop()
            return 1
        results.append((plain, ours, scd2))
    if args.repeat > 1:
        print(f"-- median of {args.repeat} repeats")
        print(f"plain MERGE      {median(r[0] for r in results):8.1f}s")
        for name, i in (("SCD1", 1), ("SCD2", 2)):
            print(
                f"lakeline {name}    {median(r[i] for r in results):8.1f}s   "
                f"ratio {median(r[i] / r[0] for r in results):.2f}"
            )
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
