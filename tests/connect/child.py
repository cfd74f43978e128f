"""The retail medallion job run as a Spark Connect client, in a process of its own.

    python child.py WORK DUMP

Starts a local Spark Connect server over Delta (``session.local_connect_session``) and runs
everything through its client session, which has no JVM: the file helpers, a stream whose
batch function fails, then the bundle's job over ``fixtures/retail`` batch 1 and batch 2.
Writes what the parent test checks to DUMP as JSON. A classic session already lives in the
pytest process, hence this process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLD = ["dim_customer", "dim_product", "fct_order_lines", "agg_daily_sales"]


def _rows(frame) -> list[str]:
    return sorted(json.dumps(r.asDict(), default=str, sort_keys=True) for r in frame.collect())


def file_helpers(spark, work: Path) -> dict:
    from lakeline import hdfs

    folder = str(work / "files")
    out = {"missing": hdfs.read_text(spark, folder + "/nothing.json")}
    hdfs.write_text(spark, folder + "/a.json", '{"a": 1}')
    out["read"] = hdfs.read_text(spark, folder + "/a.json")
    out["has_files"] = hdfs.has_files(spark, folder)
    out["has_files_missing"] = hdfs.has_files(spark, str(work / "nowhere"))
    out["listed"] = hdfs.list_files(spark, str(REPO / "fixtures" / "retail" / "batch_2" / "orders"))
    hdfs.delete_folder(spark, folder)
    out["after_delete"] = hdfs.has_files(spark, folder)
    return out


def failing_stream(spark, work: Path) -> dict:
    """A batch function that fills ``out`` and raises: the error and the results reach here."""
    from lakeline.environment import Environment
    from lakeline.errors import DataError
    from lakeline.streams import run_batches

    env = Environment("connect_probe", str(work / "l"), str(work / "c"), False)
    env.ensure_schemas(spark)
    source = env.table("bronze", "numbers")
    spark.range(5).write.format("delta").mode("overwrite").saveAsTable(source)
    collected: list[dict] = []

    def each_batch(session, batch, batch_id, out):
        out["rows"] = batch.count()
        raise ValueError(f"no batch {batch_id} today")

    try:
        run_batches(
            spark,
            env,
            spark.readStream.format("delta").table(source),
            each_batch,
            collected.append,
            str(work / "c" / "probe"),
            "dataset 'numbers', probe",
            "run-probe",
        )
    except DataError as exc:
        return {"error": str(exc), "kind": type(exc).__name__, "collected": collected}
    return {"error": None, "collected": collected}


def main(work: str, dump: str) -> None:
    from lakeline.environment import Environment
    from lakeline.local.runner import run_fixture_batches
    from lakeline.session import is_connect, local_connect_session, on_databricks

    work_dir = Path(work)
    started = time.monotonic()
    spark = local_connect_session(
        work_dir / "warehouse",
        spark__sql__shuffle__partitions="2",
        spark__default__parallelism="2",
    )
    result: dict = {
        "session_type": f"{type(spark).__module__}.{type(spark).__name__}",
        "is_connect": is_connect(spark),
        "on_databricks": on_databricks(spark),
        "seconds": {"server": time.monotonic() - started},
    }
    result["files"] = file_helpers(spark, work_dir)
    result["failing_stream"] = failing_stream(spark, work_dir)
    env = Environment("lakeline_dev", str(work_dir / "landing"), str(work_dir / "ckpt"), False)
    fixtures = REPO / "fixtures" / "retail"
    runs = {}
    for label, batch in (("batch_1", "1"), ("batch_2", "2")):
        started = time.monotonic()
        [run] = run_fixture_batches(spark, REPO, work_dir, fixtures, batches=[batch])
        result["seconds"][label] = time.monotonic() - started
        runs[label] = {
            "ok": run.ok,
            "errors": [t.error for t in run.failed],
            "outputs": [t.output for t in run.tasks if isinstance(t.output, dict)],
        }
        if not run.ok:
            break
        gold = {}
        for name in GOLD:
            table = spark.table(env.table("gold", name))
            expected_csv = REPO / "tests" / "expected" / f"after_{label}" / f"{name}.csv"
            expected = spark.read.schema(table.schema).option("header", True).csv(str(expected_csv))
            gold[name] = {"actual": _rows(table), "expected": _rows(expected)}
        runs[label]["gold"] = gold
    result["runs"] = runs
    quarantine = spark.table(env.table("quarantine", "orders")).collect()
    result["quarantine_orders"] = [
        {"reasons": r.reasons, "record": r.record, "run_id": r.run_id} for r in quarantine
    ]
    Path(dump).write_text(json.dumps(result, default=str, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
