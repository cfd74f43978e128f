"""Benchmark: TPC-H orders and lineitem, CSV -> bronze -> silver, lakeline vs plain Spark.

Both run in one process on one SparkSession, on the same files:

* plain Spark: read the CSV as strings, append to a Delta bronze table with the same lineage
  columns, read bronze, cast to the same types, keep one row per key, MERGE into silver;
* lakeline: sync the metadata, then the ingest and silver steps of the job (streaming file
  source with checkpoint, quarantine checks, dedup, MERGE, state, run log).

Prints both times per dataset and the ratio lakeline / plain (target: <= 1.15). With
``--repeat N`` both are measured N times, alternating which goes first, and the medians
close the output.

    uv sync --group bench && .venv/bin/python bench/medallion_tpch.py --scale 1 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from statistics import median

from pyspark.sql import Window
from pyspark.sql import functions as F

from lakeline.datatypes import parse_type
from lakeline.identifiers import quote
from lakeline.pipeline import Request, run_ingest, run_sync, run_transform
from lakeline.session import local_session

HERE = Path(__file__).resolve().parent
TABLES = {
    "orders": (
        ["o_orderkey"],
        [
            ("o_orderkey", "bigint"),
            ("o_custkey", "bigint"),
            ("o_orderstatus", "string"),
            ("o_totalprice", "decimal(15,2)"),
            ("o_orderdate", "date"),
            ("o_orderpriority", "string"),
            ("o_clerk", "string"),
            ("o_shippriority", "int"),
            ("o_comment", "string"),
        ],
    ),
    "lineitem": (
        ["l_orderkey", "l_linenumber"],
        [
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
        ],
    ),
}


def generate(scale: float, data: Path) -> Path:
    """TPC-H CSV for orders and lineitem, one folder per table (cached)."""
    root = data / f"sf{scale:g}"
    if all((root / t / f"{t}.csv").is_file() for t in TABLES):
        return root
    tool = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    tmp = root / "_gen"
    subprocess.run(
        [tool, "csv", "-s", f"{scale:g}", "--tables", ",".join(TABLES), f"--output-dir={tmp}"],
        check=True,
    )
    for table in TABLES:
        (root / table).mkdir(parents=True, exist_ok=True)
        (tmp / f"{table}.csv").rename(root / table / f"{table}.csv")
    shutil.rmtree(tmp)
    return root


def write_metadata(folder: Path) -> None:
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    for table, (key, columns) in TABLES.items():
        cols = "\n".join(f'  - {{name: {n}, type: "{t}"}}' for n, t in columns)
        (folder / "datasets" / f"{table}.yml").write_text(
            textwrap.dedent(
                f"""\
                id: {table}
                owner: bench
                source: {{format: csv, path: {table}, options: {{header: "true"}}}}
                primary_key: [{", ".join(key)}]
                columns:
                """
            )
            + cols
            + "\n"
        )


def plain_spark(spark, table: str, source: Path, database: str) -> tuple[float, float]:
    """What a hand-written pipeline does: read, append to bronze, cast, dedup, MERGE.

    Returns the seconds spent on bronze and on silver.
    """
    from delta.tables import DeltaTable

    clock = time.perf_counter()
    key, columns = TABLES[table]
    bronze, silver = f"`{database}`.`bronze_{table}`", f"`{database}`.`silver_{table}`"
    raw = spark.read.option("header", "true").csv(str(source / table))
    raw.select(
        "*",
        F.col("_metadata.file_path").alias("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
    ).write.format("delta").mode("append").saveAsTable(bronze)
    bronze_seconds = time.perf_counter() - clock
    typed = spark.table(bronze).select(
        *[F.col(quote(n)).cast(parse_type(t)).alias(n) for n, t in columns],
        "_source_file",
        "_ingested_at",
    )
    window = Window.partitionBy(*key).orderBy(F.col("_ingested_at").desc())
    latest = typed.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")
    if not spark.catalog.tableExists(f"{database}.silver_{table}"):
        latest.limit(0).write.format("delta").saveAsTable(silver)
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    DeltaTable.forName(spark, silver).alias("t").merge(
        latest.alias("s"), on
    ).whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    return bronze_seconds, time.perf_counter() - clock - bronze_seconds


def lakeline(spark, table: str, request: Request) -> tuple[float, float]:
    """The job's ingest and silver steps for one table; the seconds each took."""
    seconds = []
    for step in (run_ingest, run_transform):
        clock = time.perf_counter()
        result = step(spark, Request(**{**request.__dict__, "dataset": table, "layer": "silver"}))
        seconds.append(time.perf_counter() - clock)
        if result.status != "succeeded":
            raise SystemExit(f"lakeline {table}: {result.error}")
    return seconds[0], seconds[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure both paths this many times (who goes first alternates) and end with the "
        "medians: on a small shared machine one run's ratio moves by +-0.1",
    )
    args = parser.parse_args()

    source = generate(args.scale, args.data)
    warmup = generate(0.01, args.data)
    if args.work.exists():
        shutil.rmtree(args.work)
    metadata = args.work / "metadata"
    write_metadata(metadata)
    spark = local_session(
        args.work / "warehouse",
        app_name="lakeline-bench",
        spark__driver__memory=args.driver_memory,
        spark__sql__shuffle__partitions="8",
    )
    spark.sparkContext.setLogLevel("ERROR")

    def request(catalog: str, landing: Path) -> Request:
        return Request(
            catalog=catalog,
            landing_root=str(landing),
            checkpoint_root=str(args.work / catalog / "checkpoints"),
            run_id=f"bench-{catalog}",
            metadata_dir=str(metadata),
        )

    # Warm-up of both paths on a small scale, so neither pays the JVM's first-use costs.
    spark.sql("CREATE DATABASE IF NOT EXISTS plain_warmup")
    warm = request("bench_warmup", warmup)
    run_sync(spark, warm)
    for table in TABLES:
        plain_spark(spark, table, warmup, "plain_warmup")
        lakeline(spark, table, warm)

    runs = []  # per repeat: {table: (plain bronze, plain silver, ours bronze, ours silver)}
    for repeat in range(args.repeat):
        plain_db, catalog = f"plain_bench{repeat}", f"bench{repeat}"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {plain_db}")
        real = request(catalog, source)
        run_sync(spark, real)
        times = {}
        for table in TABLES:
            # Alternate who goes first, so neither always finds the files in the page cache.
            if repeat % 2 == 0:
                plain_layers = plain_spark(spark, table, source, plain_db)
                our_layers = lakeline(spark, table, real)
            else:
                our_layers = lakeline(spark, table, real)
                plain_layers = plain_spark(spark, table, source, plain_db)
            times[table] = (*plain_layers, *our_layers)
        if args.repeat > 1:
            print(f"-- repeat {repeat + 1} of {args.repeat}")
        report(times, args.scale, [ratios(times)])
        for table in TABLES:
            n_plain = spark.table(f"{plain_db}.silver_{table}").count()
            n_ours = spark.table(f"{catalog}__silver.{table}").count()
            print(f"{table:<10} silver rows: plain {n_plain}, lakeline {n_ours}")
            if n_plain != n_ours:
                print("  row counts differ: the comparison is not like for like", file=sys.stderr)
                return 1
        runs.append(times)
        if repeat + 1 < args.repeat:  # keep the disk to one repeat's tables
            spark.sql(f"DROP DATABASE {plain_db} CASCADE")
            for schema in ("bronze", "silver", "quarantine"):
                spark.sql(f"DROP DATABASE IF EXISTS {catalog}__{schema} CASCADE")
    if args.repeat > 1:
        print(f"-- median of {args.repeat} repeats (each ratio is the median of its repeats)")
        report(
            {t: tuple(median(r[t][i] for r in runs) for i in range(4)) for t in TABLES},
            args.scale,
            [ratios(r) for r in runs],
        )
    return 0


def ratios(times: dict) -> dict:
    """Every ratio ``report`` prints, by name, for one repeat."""
    out = {}
    for table, (pb, ps, ob, os_) in times.items():
        out[table] = (ob + os_) / (pb + ps)
        out[f"{table} bronze"], out[f"{table} silver"] = ob / pb, os_ / ps
    out["total"] = sum(t[2] + t[3] for t in times.values()) / sum(
        t[0] + t[1] for t in times.values()
    )
    return out


def report(times: dict, scale: float, repeats: list[dict]) -> None:
    """Print both times per table, layer and in total, and each ratio as the median of the
    ``repeats``' ratios (``ratios``); for one run, ``times`` and its own ratios."""

    def ratio(name: str) -> float:
        return median(r[name] for r in repeats)

    for table, (pb, ps, ob, os_) in times.items():
        print(
            f"{table:<10} plain {pb + ps:8.1f}s   lakeline {ob + os_:8.1f}s   "
            f"ratio {ratio(table):.2f}"
        )
        for layer, p, o in (("bronze", pb, ob), ("silver", ps, os_)):
            print(
                f"  {layer:<8} plain {p:8.1f}s   lakeline {o:8.1f}s   "
                f"ratio {ratio(f'{table} {layer}'):.2f}"
            )
    plain_total = sum(t[0] + t[1] for t in times.values())
    ours_total = sum(t[2] + t[3] for t in times.values())
    print(
        f"{'total':<10} plain {plain_total:8.1f}s   lakeline {ours_total:8.1f}s   "
        f"ratio {ratio('total'):.2f}  "
        f"(TPC-H SF{scale:g}, target <= 1.15)"
    )


if __name__ == "__main__":
    sys.exit(main())
