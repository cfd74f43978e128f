"""Running a stream to completion the way lakeline uses them: available-now, then stop."""

from __future__ import annotations

import re

from pyspark.sql import DataFrame

from lakeline.errors import DataError, LakelineError

_PY_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")


def root_cause(exc: BaseException) -> str:
    """The last Python error in a streaming failure's message (the foreachBatch's own error)."""
    found = None
    for line in str(exc).splitlines():
        match = _PY_ERROR.match(line.strip())
        if match and not match.group(1).startswith(("StreamingQuery", "Py4J")):
            found = f"{match.group(1)}: {match.group(2)}"
    return found or str(exc).splitlines()[0]


def run_available_now(frame: DataFrame, each_batch, checkpoint: str, what: str) -> None:
    """Process everything available in ``frame``'s source with ``each_batch``, then stop.

    A failure inside a batch is raised as a DataError naming ``what`` and the cause; the
    checkpoint does not commit that batch, so the next run replays it.
    """
    from pyspark.errors import StreamingQueryException

    query = (
        frame.writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
    except StreamingQueryException as exc:
        cause = root_cause(exc)
        error = LakelineError if "LakelineError" in cause or "DataError" in cause else DataError
        raise error(f"{what}: {cause}") from None
