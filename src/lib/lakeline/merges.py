"""Delta MERGE, UPDATE and DELETE as SQL, and reading what a commit did.

Every change to an existing Delta table goes through here as a SQL statement over a
temporary view, never through ``delta.tables.DeltaTable``: SQL runs the same on a classic
session, over Spark Connect and on Databricks Connect (where Delta 3.2's Python
``DeltaTable`` has no implementation), and a MERGE statement returns its own row counts,
so no history has to be read to learn them.

Identifiers in the statements are quoted by the callers (``identifiers.quote``); values
travel as named parameters (``args``) or in the source view, never as SQL text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeline.identifiers import quote


@contextmanager
def temp_view(frame: DataFrame) -> Iterator[str]:
    """``frame`` as a temporary view of a name of its own, dropped afterwards.

    Registered in the frame's own session: inside a foreachBatch that is the stream's
    session, not the one that started it.
    """
    name = f"lakeline_src_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(name)
    try:
        yield name
    finally:
        frame.sparkSession.catalog.dropTempView(name)


def merge(
    target: str,
    source: DataFrame,
    on: str,
    clauses: Iterable[str],
    args: dict[str, object] | None = None,
) -> dict[str, int]:
    """``MERGE INTO target AS t USING source AS s ON on <clauses>``; what it changed.

    ``target`` is a quoted table name; ``on`` and ``clauses`` (``WHEN MATCHED ...``) refer to
    the target as ``t`` and the source as ``s``. Returns the MERGE's own counts of inserted,
    updated and deleted rows (all zero for an empty source, which makes no commit).
    """
    statement = f"MERGE INTO {target} AS t USING {{view}} AS s ON {on} " + " ".join(clauses)
    with temp_view(source) as view:
        row = source.sparkSession.sql(statement.format(view=view), args=args or None).first()
    return {
        "inserted": int(row["num_inserted_rows"]),
        "updated": int(row["num_updated_rows"]),
        "deleted": int(row["num_deleted_rows"]),
    }


def on_keys(columns: Iterable[str]) -> str:
    """The MERGE condition that target ``t`` and source ``s`` agree on every column."""
    return " AND ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns)


def update(spark, target: str, assignments: str, where: str, args: dict | None = None) -> None:
    """``UPDATE target SET assignments WHERE where`` (values as named parameters)."""
    spark.sql(f"UPDATE {target} SET {assignments} WHERE {where}", args=args or None).collect()


def delete_matching(target: str, keys: DataFrame, on: str) -> int:
    """Delete the rows of ``target`` (``t``) that match a row of ``keys`` (``s``) by ``on``.

    A MERGE rather than ``DELETE ... WHERE x IN (...)``: the values stay data, however many
    there are. Each target row must match at most one key row.
    """
    return merge(target, keys, on, ["WHEN MATCHED THEN DELETE"])["deleted"]


def latest_version(spark, table: str) -> int | None:
    """The table's newest version (None for a table with no history)."""
    row = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").select("version").first()
    return None if row is None else int(row.version)


def newest_commit(spark, table: str, operation: str, limit: int = 5):
    """The newest ``operation`` commit among the table's last ``limit``; None if none.

    Read by operation, not as the newest commit, so a commit that lands meanwhile from
    elsewhere (an OPTIMIZE by the maintenance job) is never taken for ours. Callers hold the
    dataset's lock, so no other write of the same kind can come between.
    """
    return (
        spark.sql(f"DESCRIBE HISTORY {table} LIMIT {int(limit)}")
        .where(F.col("operation") == operation)
        .orderBy(F.col("version").desc())
        .select("version", "operationMetrics")
        .first()
    )
