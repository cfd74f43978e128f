"""Running a Delta MERGE and reading what it did."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import functions as F

_COUNTS = {
    "source": "numSourceRows",
    "inserted": "numTargetRowsInserted",
    "updated": "numTargetRowsUpdated",
    "deleted": "numTargetRowsDeleted",
}


def merge_counts(target, execute: Callable[[], object]) -> dict[str, int]:
    """Run ``execute`` (a MERGE into the DeltaTable ``target``) and return its row counts.

    The counts are read from the MERGE commit made after the version seen before it. Two
    cases are handled. Another commit landing right after it (an OPTIMIZE, say) does not
    hide it. A MERGE that changes nothing (an empty source) makes no commit at all; its
    counts are then zero, never the metrics of whatever commit came before.
    """
    before = latest_version(target)
    execute()
    metrics = commit_metrics(target, before, "MERGE")
    if metrics is None:
        return dict.fromkeys(_COUNTS, 0)
    return {name: int(metrics.get(key, 0)) for name, key in _COUNTS.items()}


def latest_version(target) -> int | None:
    """The DeltaTable's newest version (None for a table with no history)."""
    row = target.history(1).select("version").first()
    return None if row is None else int(row.version)


def commit_metrics(target, after: int | None, operation: str) -> dict[str, str] | None:
    """Metrics of the newest ``operation`` commit after version ``after``; None if none.

    Read by operation, not as the newest commit, so a commit that lands meanwhile from
    elsewhere (an OPTIMIZE) is never taken for ours.
    """
    commits = target.history(10).where(F.col("operation") == operation)
    if after is not None:
        commits = commits.where(F.col("version") > after)
    mine = commits.orderBy(F.col("version").desc()).select("operationMetrics").first()
    return None if mine is None else (mine.operationMetrics or {})
