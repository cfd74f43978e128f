"""One lakeline run of the CDC fixture in its own process, optionally killed with SIGKILL.

    python child.py WORK METADATA LANDING RUN_ID KILL DUMP

KILL is ``module.function:N:before|after`` (SIGKILL this process at the N-th call of the
function, before or after it runs) or ``none``. A run that finishes writes the silver
rows, the bronze and quarantine row counts and the files in the state table to DUMP as
JSON.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys

from lakeline.pipeline import Request, run_ingest, run_sync, run_transform
from lakeline.session import local_session


def arm(spec: str) -> None:
    if spec == "none":
        return
    target, nth, when = spec.split(":")
    module_name, function = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    original = getattr(module, function)
    calls = {"n": 0}

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if calls["n"] == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(module, function, wrapper)


def main(work: str, metadata: str, landing: str, run_id: str, kill: str, dump: str) -> None:
    spark = local_session(
        os.path.join(work, "warehouse"),
        app_name="lakeline-recovery",
        spark__sql__shuffle__partitions="2",
        spark__default__parallelism="2",
    )
    spark.sparkContext.setLogLevel("ERROR")
    request = Request(
        catalog="recovery",
        landing_root=landing,
        checkpoint_root=os.path.join(work, "checkpoints"),
        run_id=run_id,
        metadata_dir=metadata,
        dataset="customers_cdc",
        layer="silver",
    )
    arm(kill)
    run_sync(spark, request)
    run_ingest(spark, request)
    run_transform(spark, request)
    env = request.environment(spark)
    rows = spark.table(env.table("silver", "customers_cdc")).drop("_source_file", "_ingested_at")
    result = {
        "silver": sorted(json.dumps(r.asDict(), default=str) for r in rows.collect()),
        "bronze_rows": spark.table(env.table("bronze", "customers_cdc")).count(),
        "quarantine_rows": spark.table(env.table("quarantine", "customers_cdc")).count(),
        "state_files": [
            r.key
            for r in spark.table(env.table("ops", "state"))
            .where("dataset = 'customers_cdc' AND kind = 'file'")
            .collect()
        ],
    }
    with open(dump, "w") as f:
        json.dump(result, f)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:7])
