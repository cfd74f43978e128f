"""Running a stream to completion the way lakeline uses them: available-now, then stop."""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeline.environment import Environment
from lakeline.errors import DataError, LakelineError
from lakeline.hdfs import list_files, read_text
from lakeline.session import is_connect, on_databricks

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

    session = frame.sparkSession
    writer = (
        frame.writeStream.foreachBatch(_adaptive(each_batch, _aqe_setting(session)))
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
    )
    with _one_at_a_time(session):
        query = _start(writer) if is_connect(session) else writer.start()
        try:
            query.awaitTermination()
        except StreamingQueryException as exc:
            raise _failed(what, root_cause(exc)) from None


def replayable_batches(spark, checkpoint: str) -> range | None:
    """The micro-batches a stream started from ``checkpoint`` may run a second time: those
    its offsets log planned and its commits log does not record (a run stopped during
    them). Empty for a new checkpoint or one whose batches all committed. None over Spark
    Connect, where listing the checkpoint is a job of its own: any batch may be one.
    """
    if is_connect(spark):
        return None

    def ids(log: str) -> list[int]:
        names = (uri.rstrip("/").rsplit("/", 1)[-1] for uri in list_files(spark, log))
        return [int(name) for name in names if name.isdigit()]

    planned = max(ids(f"{checkpoint}/offsets"), default=-1)
    committed = max(ids(f"{checkpoint}/commits"), default=-1)
    return range(committed + 1, planned + 1)


# Spark's file stream source logs the files of each micro-batch before the batch runs, in
# ``<checkpoint>/sources/0/<batch>`` (every tenth file compacted into ``<batch>.compact``
# with the entries of earlier batches): ``v1``, then one JSON entry per file, its path as a
# URL-encoded URI.
_SOURCE_LOG_VERSION = "v1"


def planned_files(spark, checkpoint: str, batch_id: int) -> list[str] | None:
    """The files the file stream of ``checkpoint`` planned for micro-batch ``batch_id``,
    spelled as ``_metadata.file_path`` spells a row's file (URL-encoded URIs).

    None over Spark Connect (the log is read through the JVM), and when the source log is
    not there or not in the version this reads: the caller then uses the stream's own rows.
    """
    if is_connect(spark):
        return None
    log = f"{checkpoint}/sources/0/{int(batch_id)}"
    text = read_text(spark, log)
    if text is None:
        text = read_text(spark, f"{log}.compact")
    lines = (text or "").splitlines()
    if not lines or lines[0] != _SOURCE_LOG_VERSION:
        return None
    try:
        entries = [json.loads(line) for line in lines[1:] if line.strip()]
        files = [_as_file_path(e["path"]) for e in entries if e["batchId"] == batch_id]
    except (ValueError, KeyError, TypeError):
        return None
    return files or None


def _as_file_path(uri: str) -> str:
    """A source log entry spelled as ``_metadata.file_path`` spells the same file: the log
    keeps an empty authority (``file:///tmp/a%20b``) that a Hadoop ``Path`` drops
    (``file:/tmp/a%20b``); both keep the URL encoding."""
    return _respelled(uri, str)


def hadoop_path(uri: str) -> str:
    """``new Path(new URI(uri)).toString()``: the URI with its authority and path decoded."""
    return _respelled(uri, unquote)


def _respelled(uri: str, decode: Callable[[str], str]) -> str:
    """``uri`` without an empty authority, its parts passed through ``decode``."""
    parts = urlsplit(uri)
    text = f"{parts.scheme}:" if parts.scheme else ""
    if parts.netloc:
        text += f"//{decode(parts.netloc)}"
    text += decode(parts.path)
    if parts.fragment:
        text += f"#{decode(parts.fragment)}"
    return text


# A stream runs on a copy of its session with adaptive query execution off (a stateful
# stream's shuffle partitions must not change between batches), and a foreachBatch
# function's queries inherit that copy: planned from estimates alone, with no join picked
# or partitions coalesced from what a stage really produced, unlike the same statements
# run as a batch job. lakeline's streams are stateless (a file or Delta source straight
# into foreachBatch), so each batch gets the session's own setting back, as Spark's
# maintainers advise (SPARK-53941). A session that refuses the setting (a compute that
# fixes its Spark configuration) runs the batch as it plans it.
_AQE = "spark.sql.adaptive.enabled"
_REFUSED = ("CANNOT_MODIFY_CONFIG", "CONFIG_NOT_AVAILABLE")


def _aqe_setting(session) -> str:
    return session.conf.get(_AQE, "true") or "true"


def _adaptive(each_batch, enabled: str):
    """``each_batch`` run with adaptive execution as the stream's own session has it.
    Captures only a string: over Spark Connect the function is pickled to the server."""

    def run(batch: DataFrame, batch_id: int) -> None:
        conf = batch.sparkSession.conf
        try:
            if conf.get(_AQE, enabled) != enabled:
                conf.set(_AQE, enabled)
        except Exception as exc:
            if not any(marker in str(exc) for marker in _REFUSED):
                raise
        each_batch(batch, batch_id)

    return run


# Starting a foreachBatch query over Spark Connect starts the function's Python worker
# beside the server, and a Spark 3.5 server waits only 10 s (fixed) for it to connect back.
# A worker importing pyspark on a busy 2-core machine, beside other streams' batches, can
# miss that. So the streams of one process start one at a time, those of a local Connect
# server (``session.local_connect_session``, whose workers share this machine) even run one
# at a time, and a start that missed it anyway (nothing of the stream has run) is retried.
_WORKER_DID_NOT_START = "Python worker failed to connect back"
_START_ATTEMPTS = 6
_STARTING = threading.Lock()
_LOCAL_SERVER = threading.Lock()


def _one_at_a_time(session):
    if is_connect(session) and not on_databricks(session):
        return _LOCAL_SERVER
    return contextlib.nullcontext()


def _start(writer):
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            with _STARTING:
                return writer.start()
        except Exception as exc:
            if _WORKER_DID_NOT_START not in str(exc) or attempt == _START_ATTEMPTS:
                raise
            time.sleep(attempt * (1 + random.random()))
    raise AssertionError("unreachable")


def _failed(what: str, cause: str) -> LakelineError:
    error = LakelineError if "LakelineError" in cause or "DataError" in cause else DataError
    return error(f"{what}: {cause}")


# --------------------------------------------------------------------- batches with results

BATCH_RESULTS = "stream_batches"


def run_batches(
    spark,
    env: Environment,
    frame: DataFrame,
    each_batch: Callable[[object, DataFrame, int, dict], None],
    collect: Callable[[dict], None],
    checkpoint: str,
    what: str,
    run_id: str,
) -> None:
    """``run_available_now`` for a batch function whose results the caller adds up.

    ``each_batch(session, batch, batch_id, out)`` processes one micro-batch with ``session``
    and fills the dict ``out`` with what it did (JSON values), also when it raises;
    ``collect(out)`` adds one batch's ``out`` to the caller's totals, in batch order, in
    this process. On a classic session that is done after each batch, as it runs here.

    Over Spark Connect the batch function runs in a Python worker beside the server: it is
    given the batch's own session (``batch.sparkSession``; the client's is not picklable)
    and its ``out`` and error are appended to ``ops.stream_batches`` (run, batch, JSON),
    which this process reads once the stream has stopped. A failed batch is raised as on a
    classic session: a DataError (or LakelineError) naming ``what`` and the batch's error.
    """
    if not is_connect(spark):

        def in_process(batch: DataFrame, batch_id: int) -> None:
            out: dict = {}
            try:
                each_batch(spark, batch, batch_id, out)
            finally:
                collect(out)

        run_available_now(frame, in_process, checkpoint, what)
        return
    table = ensure_batch_results_table(spark, env)
    stream = uuid.uuid4().hex
    failure = None
    try:
        run_available_now(
            frame, _posting(each_batch, table, stream, run_id, what), checkpoint, what
        )
    except LakelineError as exc:
        failure = exc
    rows = (
        spark.table(table)
        .where(F.col("stream") == stream)
        .orderBy("batch_id", "recorded_at")
        .select("batch_id", "result", "error")
        .collect()
    )
    latest = {r.batch_id: r for r in rows}  # a batch posted twice: its last attempt
    for batch_id in sorted(latest):
        collect(json.loads(latest[batch_id].result or "{}"))
    error = next((r.error for r in latest.values() if r.error), None)
    if error is not None:
        raise _failed(what, error) from None
    if failure is not None:
        raise failure


def ensure_batch_results_table(spark, env: Environment) -> str:
    """``ops.stream_batches``, where batches run over Spark Connect leave their results."""
    return env.create(
        spark,
        "ops",
        BATCH_RESULTS,
        "(stream STRING NOT NULL, run_id STRING, "
        "what STRING, batch_id BIGINT NOT NULL, result STRING, error STRING, "
        "recorded_at TIMESTAMP) USING DELTA "
        "COMMENT 'lakeline: what each micro-batch of a stream run over Spark Connect did'",
    )


_RESULT_SCHEMA = (
    "stream string, run_id string, what string, batch_id bigint, result string, "
    "error string, recorded_at timestamp"
)


def _posting(each_batch, table: str, stream: str, run_id: str, what: str):
    """The foreachBatch function that runs ``each_batch`` beside a Spark Connect server and
    appends its result to ``table``. Captures no session: it is pickled to the server."""

    def run(batch: DataFrame, batch_id: int) -> None:
        session = batch.sparkSession
        out: dict = {}
        error = None
        try:
            each_batch(session, batch, batch_id, out)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            row = (stream, run_id, what, batch_id, json.dumps(out, default=_plain), error)
            now = datetime.now(UTC).replace(tzinfo=None)
            session.createDataFrame([(*row, now)], _RESULT_SCHEMA).write.format("delta").mode(
                "append"
            ).saveAsTable(table)

    return run


def _plain(value):
    """JSON for what a batch reports: a numpy number (a Connect ``count()`` is one) as the
    number it is, anything else as text."""
    return value.item() if hasattr(value, "item") else str(value)
