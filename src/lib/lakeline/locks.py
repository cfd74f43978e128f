"""One run at a time per dataset and layer: a lock row in ``ops.locks``, taken atomically.

Taking the lock is a Delta MERGE of the row ``(name, run_id, host, pid, acquired_at)``
into the lock table, partitioned by name. Two runs that race both MERGE into the same
partition; Delta's optimistic concurrency lets exactly one commit and the other gets a
conflict, re-reads the row and sees the holder. The same mechanism works on a laptop and
in a workspace, with no lock service.

A lock whose holder is dead is taken over: on the same host when its process no longer
exists (a run killed with SIGKILL), anywhere after ``STALE_AFTER`` (six hours). The run
that does not get the lock waits up to ``wait_seconds`` and then fails with a
``ConcurrentRunError`` naming the holder; nothing has been written by then. Giving the
lock back drops its partition: before ``STALE_AFTER`` nobody else can have taken it over.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline.environment import Environment
from lakeline.errors import LakelineError

LOCK_TABLE = "locks"
STALE_AFTER = 6 * 3600.0

_SCHEMA = T.StructType(
    [
        T.StructField("name", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("host", T.StringType(), False),
        T.StructField("pid", T.LongType(), False),
        T.StructField("acquired_at", T.TimestampType(), False),
    ]
)


class ConcurrentRunError(LakelineError):
    """Another run holds the dataset's lock."""


def ensure_lock_table(spark, env: Environment) -> str:
    return env.create(
        spark,
        "ops",
        LOCK_TABLE,
        "(name STRING NOT NULL, run_id STRING NOT NULL, "
        "host STRING NOT NULL, pid BIGINT NOT NULL, acquired_at TIMESTAMP NOT NULL) "
        "USING DELTA PARTITIONED BY (name) "
        "COMMENT 'lakeline: which run is working on which dataset and layer'",
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _alive(host: str, pid: int, acquired_at: datetime) -> bool:
    if (_now() - acquired_at).total_seconds() > STALE_AFTER:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(spark, env: Environment, name: str):
    rows = spark.table(env.table("ops", LOCK_TABLE)).where(F.col("name") == F.lit(name)).collect()
    return rows[0] if rows else None


def _conflict(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "Concurrent" in text or "DELTA_CONCURRENT" in text


def _missing(exc: Exception) -> bool:
    return "TABLE_OR_VIEW_NOT_FOUND" in str(exc)


# The lock row as a MERGE source; values are parameters, never SQL text. The literal
# partition predicate ``t.name = :name`` keeps other locks out of the conflict check.
_MERGE = (
    "MERGE INTO {table} t USING (SELECT :name AS name, :run_id AS run_id, :host AS host, "
    "CAST(:pid AS BIGINT) AS pid, CAST(:at AS TIMESTAMP) AS acquired_at) s "
    "ON t.name = :name AND t.name = s.name {matched}WHEN NOT MATCHED THEN INSERT *"
)


def _swap(spark, table: str, name: str, run_id: str, seen: str | None) -> bool:
    """Write our row if the partition is empty, or (``seen`` given) if it still holds the
    run ``seen``: a compare-and-swap. True when this MERGE wrote our row."""
    me = {"name": name, "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()}
    matched = "" if seen is None else "WHEN MATCHED AND t.run_id = :seen THEN UPDATE SET * "
    args = {**me, "at": _now()} | ({} if seen is None else {"seen": seen})
    counts = spark.sql(_MERGE.format(table=table, matched=matched), args=args).first()
    return counts is not None and counts["num_affected_rows"] == 1


def try_acquire(spark, env: Environment, name: str, run_id: str):
    """Take the lock ``name`` for ``run_id``; None when taken, else the holder's row.

    The free lock costs one MERGE that inserts only into an empty partition; its commit
    metrics say whether it did. Delta's conflict check lets only one of two racing
    MERGEs commit, so an inserted row is ours. A held lock is read, and replaced only
    when its holder is dead or is this very run (a compare-and-swap on the holder seen).
    """
    table = env.table("ops", LOCK_TABLE)
    me = (run_id, socket.gethostname(), os.getpid())
    for attempt in range(5):
        try:
            if attempt == 0 and _swap(spark, table, name, run_id, None):
                return None
            held = _holder(spark, env, name)
            other = held is not None and (held.run_id, held.host, held.pid) != me
            if other and _alive(held.host, held.pid, held.acquired_at):
                return held
            seen = held.run_id if held is not None else None
            if _swap(spark, table, name, run_id, seen):
                return None
        except Exception as exc:
            if _missing(exc):  # sync makes it; a lock taken before any sync makes it here
                ensure_lock_table(spark, env)
                continue
            if not _conflict(exc):
                raise
        # Another run committed first: look again.
    held = _holder(spark, env, name)
    if held is not None and (held.run_id, held.host, held.pid) == me:
        return None
    if held is None:
        raise ConcurrentRunError(
            f"lock '{name}': run {run_id} met a concurrent change of the lock table five "
            "times in a row; nothing was written, run again"
        )
    return held


# Only a run that finds our row older than STALE_AFTER (by its clock) may replace it, so
# while we have held it for less than this, the partition holds our row alone.
_SURELY_OURS = STALE_AFTER / 2


def release(spark, env: Environment, name: str, run_id: str, held_for: float | None = None):
    """Give the lock back. Held for less than half of ``STALE_AFTER`` (``held_for`` seconds),
    no other run can have taken it over, and the partition is dropped whole: a delete of
    files only, with no scan. Held longer, or for an unknown time, only our row goes."""
    table = env.table("ops", LOCK_TABLE)
    if held_for is not None and held_for < _SURELY_OURS:
        query, args = f"DELETE FROM {table} WHERE name = :name", {"name": name}
    else:
        query = f"DELETE FROM {table} WHERE name = :name AND run_id = :run_id"
        args = {"name": name, "run_id": run_id}
    for _ in range(5):
        try:
            spark.sql(query, args=args)
            return
        except Exception as exc:
            if not _conflict(exc):
                raise


@dataclass(frozen=True)
class Held:
    """A lock this run holds, from ``acquire``; give it back with ``Held.release``."""

    name: str
    run_id: str
    since: float  # time.monotonic() when it was taken

    def release(self, spark, env: Environment) -> None:
        release(spark, env, self.name, self.run_id, time.monotonic() - self.since)


def acquire(
    spark,
    env: Environment,
    dataset: str,
    layer: str,
    run_id: str,
    wait_seconds: float = 0.0,
    poll_seconds: float = 2.0,
) -> Held:
    """Take the lock of ``dataset``'s ``layer``, waiting up to ``wait_seconds`` for it;
    a ``ConcurrentRunError`` naming the holder when another run keeps it."""
    name = f"{dataset}/{layer}"
    deadline = time.monotonic() + wait_seconds
    while True:
        since = time.monotonic()
        held = try_acquire(spark, env, name, run_id)
        if held is None:
            return Held(name, run_id, since)
        if time.monotonic() >= deadline:
            raise ConcurrentRunError(
                f"dataset '{dataset}', {layer}: run {held.run_id} (host {held.host}, process "
                f"{held.pid}, since {held.acquired_at:%Y-%m-%d %H:%M:%S} UTC) is already "
                f"working on it; this run {run_id} wrote nothing. Wait for it to finish and run "
                f"again; if that run is dead, delete its row from {env.table('ops', LOCK_TABLE)}."
            )
        time.sleep(poll_seconds)


@contextmanager
def hold(
    spark,
    env: Environment,
    dataset: str,
    layer: str,
    run_id: str,
    wait_seconds: float = 0.0,
    poll_seconds: float = 2.0,
) -> Iterator[None]:
    """Run the block holding the lock of ``dataset``'s ``layer``; see the module docstring."""
    held = acquire(spark, env, dataset, layer, run_id, wait_seconds, poll_seconds)
    try:
        yield
    finally:
        held.release(spark, env)
