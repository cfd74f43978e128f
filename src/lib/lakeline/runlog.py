"""The run log: one row per run, dataset and step, success or failure, with row counts."""

from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pyspark.sql import types as T

from lakeline.environment import Environment

RUN_LOG_TABLE = "run_log"

_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("dataset", T.StringType(), False),
        T.StructField("step", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("rows_read", T.LongType(), True),
        T.StructField("rows_written", T.LongType(), True),
        T.StructField("details", T.StringType(), True),
        T.StructField("error", T.StringType(), True),
    ]
)


@dataclass
class StepResult:
    """What one step did to one dataset; the notebooks exit with this as JSON."""

    dataset: str
    step: str
    status: str = "running"
    rows_read: int = 0
    rows_written: int = 0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def ensure_run_log_table(spark, env: Environment) -> str:
    return env.create(
        spark,
        "ops",
        RUN_LOG_TABLE,
        "(run_id STRING NOT NULL, dataset STRING NOT NULL, "
        "step STRING NOT NULL, started_at TIMESTAMP NOT NULL, ended_at TIMESTAMP NOT NULL, "
        "status STRING NOT NULL, rows_read BIGINT, rows_written BIGINT, details STRING, "
        "error STRING) USING DELTA COMMENT 'lakeline run log: one row per run, dataset and step'",
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@contextmanager
def logged_step(spark, env: Environment, run_id: str, dataset: str, step: str):
    """Run a step, then append its outcome to the run log, failure included.

    Yields a StepResult for the step to fill in; an exception is recorded and re-raised.
    """
    result = StepResult(dataset=dataset, step=step)
    started, clock = _now(), time.perf_counter()
    try:
        yield result
        result.status = "succeeded"
    except BaseException as exc:
        result.status = "failed"
        result.error = f"{type(exc).__name__}: {exc}"
        result.details.setdefault("traceback", traceback.format_exc(limit=8))
        raise
    finally:
        result.seconds = round(time.perf_counter() - clock, 2)
        details = {k: v for k, v in result.details.items() if k != "traceback"}
        row = (
            run_id,
            dataset,
            step,
            started,
            _now(),
            result.status,
            result.rows_read,
            result.rows_written,
            json.dumps(details, default=str, sort_keys=True),
            result.error,
        )
        entry = spark.createDataFrame([row], _SCHEMA)
        try:
            entry.write.insertInto(env.table("ops", RUN_LOG_TABLE))
        except Exception as exc:
            if "TABLE_OR_VIEW_NOT_FOUND" not in str(exc):
                raise
            # Sync makes the table; a step run before any sync makes it here.
            entry.write.insertInto(ensure_run_log_table(spark, env))
