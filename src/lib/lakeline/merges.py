"""Running a Delta MERGE and reading what it did."""

from __future__ import annotations

from collections.abc import Callable

_COUNTS = {
    "source": "numSourceRows",
    "inserted": "numTargetRowsInserted",
    "updated": "numTargetRowsUpdated",
    "deleted": "numTargetRowsDeleted",
}


def merge_counts(target, execute: Callable[[], object]) -> dict[str, int]:
    """Run ``execute`` (a MERGE into the DeltaTable ``target``) and return its row counts.

    The counts are read from the commit the MERGE made. A MERGE that changes nothing (an
    empty source) makes no commit at all; its counts are then zero, never the metrics of
    whatever commit came before.
    """
    before = target.history(1).select("version").first()
    execute()
    last = target.history(1).select("version", "operationMetrics").first()
    if before is not None and last.version == before.version:
        return dict.fromkeys(_COUNTS, 0)
    metrics = last.operationMetrics or {}
    return {name: int(metrics.get(key, 0)) for name, key in _COUNTS.items()}
