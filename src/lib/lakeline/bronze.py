"""Bronze: the source as it is, append-only, with ingestion metadata on every row.

Files are read the way Auto Loader reads them: a streaming file source with a checkpoint
and an available-now trigger, so each file is ingested exactly once however often a run
is repeated or a file is listed again. The schema is inferred once (text formats as
strings, so nothing is rejected at bronze) and kept beside the checkpoint, like Auto
Loader's schema location.

On Databricks (``session.on_databricks``) the stream is Auto Loader itself; locally the
emulation above. Both come from one definition, ``file_reader(dataset, env, auto_loader)``:

=============================  =============================================================
Auto Loader (workspace)        local emulation
=============================  =============================================================
``cloudFiles``                 the plain file source of ``source.format``, ``maxFileAge``
                               36500d (never skip a late file, as Auto Loader)
``cloudFiles.format``          ``source.format``
``cloudFiles.schemaLocation``  ``<checkpoint>/bronze``: Auto Loader keeps ``_schemas/`` there,
                               where the emulation keeps ``_schemas/0.json``
``cloudFiles.schemaEvolution`` ``schema_evolution`` as it is (the modes are Auto Loader's:
``Mode``                       addNewColumns, rescue, failOnNewColumns, none)
``rescuedDataColumn``          ``_rescued_data``, under ``rescue``
``cloudFiles.inferColumn``     ``false`` for CSV and JSON: text columns stay strings, as the
``Types``                      emulation keeps them (Parquet keeps its types in both)
reader options                 ``source.options`` (CSV ``header`` true, JSON
                               ``primitivesAsString`` true, unless given), in both
=============================  =============================================================

With Auto Loader, schema inference, drift handling and rescue are Auto Loader's own (under
``addNewColumns`` its stream stops on a new column and the job's retry goes on with the
wider schema); lakeline appends each micro-batch with ``mergeSchema`` so bronze follows.

Locally, the stream picks the files and checkpoints them; each micro-batch's rows are read
from the files its checkpoint lists (``streams.planned_files``) in a batch read, which
writes faster than the batch ``foreachBatch`` is handed (that one copies every row once
more). Over Spark Connect and with Auto Loader, the handed batch is written. Those listed
files are also what the state table records as processed, beside the append when no
watermark waits on the rows (``_stream_into_bronze``).

Every bronze commit carries a marker in its commit metadata (the micro-batch, or the
watermark reached). A micro-batch replayed after a crash (its checkpoint planned it and
did not commit it) finds its marker and is not written twice; an incremental Delta read
that crashed before its state was saved recovers the watermark from the marker.

Delta sources are read in batch: all of it for ``full`` loads, rows past the stored
watermark for ``incremental`` ones.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import merges, schema_evolution, state
from lakeline.datatypes import parse_type
from lakeline.environment import Environment
from lakeline.errors import DataError
from lakeline.hdfs import has_files, read_text, write_text
from lakeline.metadata import Column, Dataset, SchemaEvolution, SourceFormat
from lakeline.overlap import alongside
from lakeline.runlog import StepResult
from lakeline.session import is_connect
from lakeline.streams import hadoop_path, planned_files, replayable_batches, run_batches

MARKER = "lakeline"


def bronze_table(env: Environment, dataset: Dataset) -> str:
    return env.table("bronze", dataset.id)


def ingest(spark, env: Environment, dataset: Dataset, run_id: str, result: StepResult) -> None:
    """Append what is new in the dataset's source to its bronze table."""
    state.ensure_state_table(spark, env)
    if dataset.source.format is SourceFormat.delta:
        _ingest_delta(spark, env, dataset, run_id, result)
    else:
        _ingest_files(spark, env, dataset, run_id, result)


@dataclass(frozen=True)
class FileReader:
    """How bronze opens a dataset's file stream: ``spark.readStream.format(format)
    .options(**options)``."""

    format: str
    options: dict[str, str]


def file_reader(dataset: Dataset, env: Environment, auto_loader: bool) -> FileReader:
    """The stream reader for a file dataset: Auto Loader in a workspace, or the plain file
    source that the local emulation uses. A pure function of the metadata and environment."""
    fmt = dataset.source.format
    options = _reader_options(dataset)
    if not auto_loader:
        # Spark's file source forgets files older than maxFileAge (7 days) behind the newest
        # one and would skip a late file with an old timestamp; Auto Loader never does.
        return FileReader(fmt.value, {"maxFileAge": "36500d", **options})
    mode = dataset.schema_evolution
    cloud = {
        "cloudFiles.format": fmt.value,
        "cloudFiles.schemaLocation": env.checkpoint(dataset.id, "bronze"),
        "cloudFiles.schemaEvolutionMode": mode.value,
    }
    if fmt in (SourceFormat.csv, SourceFormat.json):
        cloud["cloudFiles.inferColumnTypes"] = "false"
    if mode is SchemaEvolution.rescue:
        cloud["rescuedDataColumn"] = schema_evolution.RESCUED
    return FileReader("cloudFiles", {**cloud, **options})


def _reader_options(dataset: Dataset) -> dict[str, str]:
    options = dict(dataset.source.options)
    if dataset.source.format is SourceFormat.csv:
        options.setdefault("header", "true")
    if dataset.source.format is SourceFormat.json:
        options.setdefault("primitivesAsString", "true")
    return options


def _has_files(spark, path: str) -> bool:
    return has_files(spark, path)


def _source_schema(spark, env: Environment, dataset: Dataset, path: str) -> T.StructType:
    """The schema inferred on first sight, persisted like Auto Loader's schema location."""
    location = posixpath.join(env.checkpoint(dataset.id, "bronze"), "_schemas", "0.json")
    saved = read_text(spark, location)
    if saved is not None:
        return T.StructType.fromJson(json.loads(saved))
    fmt = dataset.source.format.value
    inferred = spark.read.format(fmt).options(**_reader_options(dataset)).load(path).schema
    if dataset.source.format is not SourceFormat.parquet:
        inferred = T.StructType([T.StructField(f.name, T.StringType(), True) for f in inferred])
    missing = [c.source_name for c in dataset.columns if c.source_name not in inferred.names]
    if missing:
        raise DataError(
            f"dataset '{dataset.id}': the files under {path} have no column "
            f"{', '.join(repr(m) for m in missing)} that its metadata declares "
            f"(columns found: {', '.join(inferred.names)})"
        )
    write_text(spark, location, inferred.json())
    return inferred


def _committed_markers(spark, table: str, limit: int = 10) -> list[dict]:
    """Markers of the table's latest commits, newest first."""
    rows = spark.sql(f"DESCRIBE HISTORY {table} LIMIT {int(limit)}").select("userMetadata")
    markers = []
    for (meta,) in rows.collect():
        try:
            parsed = json.loads(meta) if meta else {}
        except ValueError:
            continue
        if isinstance(parsed, dict) and MARKER in parsed:
            markers.append(parsed[MARKER])
    return markers


def _watermark_key(column: Column, value: str):
    """Compare watermarks by their declared type, not as text."""
    kind = parse_type(column.type)
    if isinstance(kind, T.DecimalType | T.FloatType | T.DoubleType):
        return Decimal(value)
    if isinstance(kind, T.IntegralType):
        return int(value)
    if isinstance(kind, T.TimestampType):
        return datetime.fromisoformat(value)
    if isinstance(kind, T.DateType):
        return date.fromisoformat(value)
    return value


def _later(column: Column, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return a if _watermark_key(column, a) >= _watermark_key(column, b) else b


def _auto_loader_stream(spark, env: Environment, dataset: Dataset, path: str) -> DataFrame:
    reader = file_reader(dataset, env, auto_loader=True)
    return (
        spark.readStream.format(reader.format)
        .options(**reader.options)
        .load(path)
        .select("*", F.col("_metadata.file_path").alias("_source_file"))
    )


def _ingest_files(spark, env, dataset: Dataset, run_id: str, result: StepResult) -> None:
    from lakeline.session import on_databricks

    path = env.source_path(dataset.source.path)
    target = bronze_table(env, dataset)
    if on_databricks(spark):
        stream = _with_lineage(_auto_loader_stream(spark, env, dataset, path), run_id)
        _stream_into_bronze(spark, env, dataset, stream, run_id, result, merge_schema=True)
        return
    if not _has_files(spark, path):
        result.details["note"] = f"no source files yet under {path}"
        return
    schema = _source_schema(spark, env, dataset, path)
    # The dataset's schema_evolution mode (none: new columns ignored, as always).
    location = schema_evolution.schema_location(env, dataset)
    options = _reader_options(dataset)
    schema, rescued = schema_evolution.file_schema(
        spark, env, dataset, path, schema, location, options, run_id, result
    )
    stored = T.StructType([f for f in schema.fields if f.name not in rescued])
    # Parquet under rescue: values whose type differs from the schema are rescued too, so
    # each micro-batch's files are read again with their own types (read_fitting).
    fitting = schema_evolution.rescues_types(dataset)
    if rescued or fitting:
        stored = stored.add(schema_evolution.RESCUED, T.StringType(), True)
    _ensure_bronze(spark, env, dataset, stored)
    if dataset.schema_evolution is not SchemaEvolution.none:
        schema_evolution.align_bronze(spark, env, target, stored)
    reader = file_reader(dataset, env, auto_loader=False)
    stream = (
        spark.readStream.format(reader.format)
        .options(**reader.options)
        .schema(schema_evolution.FILES_ONLY if fitting else schema)
        .load(path)
        .select("*", F.col("_metadata.file_path").alias("_source_file"))
    )
    checkpoint = env.checkpoint(dataset.id, "bronze")
    if fitting:

        def refit(session, batch: DataFrame, batch_id: int) -> Planned:
            # The stream's rows carry only their file (FILES_ONLY): read the files again.
            planned = planned_files(session, checkpoint, batch_id)
            if planned is not None:
                files = [_literal(hadoop_path(f)) for f in planned]
            else:
                files = sorted(r[0] for r in batch.select("_source_file").distinct().collect())
            if files:
                batch = schema_evolution.read_fitting(session, files, schema, rescued, options)
            return _with_lineage(batch, run_id), planned

        _stream_into_bronze(spark, env, dataset, stream, run_id, result, rows=refit)
        return
    stream = _with_lineage(schema_evolution.rescue(stream, rescued), run_id)
    base = _planned_read_options(path)

    def read_planned(session, batch: DataFrame, batch_id: int) -> Planned:
        # The stream picks the files and its checkpoint records them; their rows are read
        # in a batch read of those files, as the stream itself reads them (same options,
        # schema and file spelling). A micro-batch handed to foreachBatch is a scan of the
        # stream's already-planned rows, which copies every row once more: ~10% of a large
        # CSV's ingestion. Where the files are not known (Spark Connect), the batch is used.
        files = planned_files(session, checkpoint, batch_id)
        if files is None:
            return batch, None
        frame = (
            session.read.format(reader.format)
            .options(**reader.options, **base)
            .schema(schema)
            .load([_literal(hadoop_path(f)) for f in files])
            .select("*", F.col("_metadata.file_path").alias("_source_file"))
        )
        return _with_lineage(schema_evolution.rescue(frame, rescued), run_id), files

    _stream_into_bronze(spark, env, dataset, stream, run_id, result, rows=read_planned)


# Spark's glob characters (SparkHadoopUtil.isGlobPath).
_GLOB = re.compile(r"([{}\[\]*?\\])")


def _planned_read_options(path: str) -> dict[str, str]:
    """What Spark's file stream adds to the source's options when it reads a micro-batch's
    files: the source folder as the base of partition folders, unless it is a glob."""
    return {} if _GLOB.search(path) else {"basePath": path}


def _literal(path: str) -> str:
    """``path`` with its glob characters escaped, so a batch read takes it as it is."""
    return _GLOB.sub(r"\\\1", path)


# A micro-batch's rows with their lineage, and the files its checkpoint planned (as
# ``_metadata.file_path`` spells them) or None where they are not known.
Planned = tuple[DataFrame, list[str] | None]


def _stream_into_bronze(
    spark,
    env: Environment,
    dataset: Dataset,
    stream: DataFrame,
    run_id: str,
    result: StepResult,
    rows: Callable[[object, DataFrame, int], Planned] | None = None,
    merge_schema: bool = False,
) -> None:
    """Run the file stream available-now into bronze, each micro-batch once.

    ``stream`` carries the lineage columns already (``_with_lineage``), or
    ``rows(session, batch, batch_id)`` makes the micro-batch's rows that do, and says
    which files its checkpoint planned for it.

    A batch's files and watermark are mirrored into the state table before the checkpoint
    commits the batch (a crash before then replays it). When its files are known before the
    append (the checkpoint planned them) and no watermark waits on its rows, they are
    recorded while the rows are appended; a file with no rows is then listed too.
    """
    target = bronze_table(env, dataset)
    wm = dataset.column(dataset.load.watermark_column) if dataset.load.watermark_column else None
    stored = state.watermark(spark, env, dataset.id) if wm is not None else None
    seen: dict = {"rows": 0, "files": set(), "watermark": stored}
    # Over Spark Connect the batch runs beside the server (streams.run_batches): no
    # Observation there, and the watermark so far is read back from the state.
    connect = is_connect(spark)
    checkpoint = env.checkpoint(dataset.id, "bronze")
    # Only a batch the checkpoint planned before a stop can have reached bronze already;
    # the others need not look for their marker in bronze's history.
    replayable = replayable_batches(spark, checkpoint)

    def write_batch(session, batch: DataFrame, batch_id: int, out: dict) -> None:
        marker = {"stream": "bronze", "batch": batch_id}
        uncommitted = replayable is not None and batch_id in replayable
        maybe = replayable is None or uncommitted
        replay = maybe and marker in _committed_markers(session, target)
        # A first attempt's files cannot be in the state yet: they are appended to it, which
        # is cheaper than any MERGE. A batch planned before a stop may have recorded them
        # (beside an append that did not commit), and a replay has: those merge.
        fresh = not replay and not uncommitted
        planned = None
        if rows is not None:
            batch, planned = rows(session, batch, batch_id)
        metrics = [F.count(F.lit(1)).alias("rows")]
        if planned is None:
            metrics.append(F.array_join(F.collect_set("_source_file"), "\n").alias("files"))
        if wm is not None:
            typed = F.col(f"`{wm.source_name}`").cast(parse_type(wm.type))
            metrics.append(F.max(typed).cast("string").alias("watermark"))
        beside = planned is not None and wm is None and not replay
        if replay:
            # Committed to bronze before a crash: not written again, but its state may be
            # missing, so it is worked out from the batch and merged (idempotent).
            got = batch.agg(*metrics).first().asDict()
        elif connect:  # no Observation over Spark Connect: counted first, then appended
            got = batch.agg(*metrics).first().asDict()
            _append(batch, target, marker, merge_schema)
        else:
            observation = Observation(f"bronze_{dataset.id}_{run_id}_{batch_id}")
            observed = batch.observe(observation, *metrics)
            if beside:
                with alongside(
                    "lakeline-state",
                    state.record,
                    session,
                    env,
                    dataset.id,
                    run_id,
                    files=planned,
                    fresh=fresh,
                ):
                    _append(observed, target, marker, merge_schema)
            else:
                _append(observed, target, marker, merge_schema)
            got = observation.get
        files = planned
        if files is None:
            files = [f for f in (got["files"] or "").split("\n") if f]
        if not replay:
            out["rows"], out["files"] = got["rows"], files
        mark = seen["watermark"]
        if wm is not None:
            if connect:
                mark = state.watermark(session, env, dataset.id)
            mark = _later(wm, got.get("watermark"), mark)
        out["watermark"] = mark
        if not beside:
            state.record(session, env, dataset.id, run_id, files=files, watermark=mark, fresh=fresh)

    def collect(out: dict) -> None:
        seen["rows"] += out.get("rows", 0)
        seen["files"].update(out.get("files", []))
        if "watermark" in out:
            seen["watermark"] = out["watermark"]

    what = f"dataset '{dataset.id}', bronze"
    run_batches(spark, env, stream, write_batch, collect, checkpoint, what, run_id)
    result.rows_read = result.rows_written = seen["rows"]
    result.details["files"] = sorted(seen["files"])
    if seen["watermark"] is not None:
        result.details["watermark"] = seen["watermark"]


def _append(frame: DataFrame, target: str, marker: dict, merge_schema: bool = False) -> None:
    writer = frame.write.format("delta").mode("append")
    if merge_schema:  # Auto Loader widened its schema: bronze follows
        writer = writer.option("mergeSchema", "true")
    writer.option("userMetadata", json.dumps({MARKER: marker}, sort_keys=True)).saveAsTable(target)


def _with_lineage(frame: DataFrame, run_id: str) -> DataFrame:
    columns = [c for c in frame.columns if c != "_source_file"]
    return frame.select(
        *[F.col(f"`{c}`") for c in columns],
        F.lit(run_id).alias("_run_id"),
        F.col("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
    )


def _ensure_bronze(spark, env: Environment, dataset: Dataset, schema: T.StructType) -> None:
    if env.exists(spark, "bronze", dataset.id):
        return
    fields = [f for f in schema.fields if f.name != "_source_file"] + [
        T.StructField("_run_id", T.StringType(), True),
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_ingested_at", T.TimestampType(), True),
    ]
    env.create(spark, "bronze", dataset.id, T.StructType(fields))


def _ingest_delta(spark, env, dataset: Dataset, run_id: str, result: StepResult) -> None:
    source = dataset.source
    if source.table:
        frame = spark.table(env.external_table(source.table))
        origin = source.table
    else:
        origin = env.source_path(source.path)
        frame = spark.read.format("delta").load(origin)
    target = bronze_table(env, dataset)
    _ensure_bronze(spark, env, dataset, frame.schema)
    frame = schema_evolution.delta_frame(spark, env, dataset, frame, target, run_id, result)
    marker: dict = {"source": "delta", "run": run_id}
    if dataset.load.watermark_column is not None:  # incremental, or a cdc feed read by watermark
        wm = dataset.column(dataset.load.watermark_column)
        kind = parse_type(wm.type)
        stored = state.watermark(spark, env, dataset.id)
        # Recover from a crash between the bronze append and the state update.
        committed = [m.get("watermark") for m in _committed_markers(spark, target)]
        stored = _later(wm, stored, next((w for w in committed if w is not None), None))
        typed = F.col(f"`{wm.source_name}`").cast(kind)
        if stored is not None:
            frame = frame.where(typed > F.lit(stored).cast(kind))
        high = frame.agg(F.max(typed).cast("string")).first()[0]
        if high is None:
            state.record(spark, env, dataset.id, run_id, watermark=stored)
            result.details["note"] = f"nothing past the watermark {stored}"
            result.details["watermark"] = stored
            return
        frame = frame.where(typed <= F.lit(high).cast(kind))
        marker["watermark"] = high
    framed = _with_lineage(frame.withColumn("_source_file", F.lit(origin)), run_id)
    if is_connect(spark):  # no Observation: the append's own commit counts its rows
        _append(framed, target, marker)
        written = merges.newest_commit(spark, target, "WRITE")
        rows = int((written.operationMetrics or {}).get("numOutputRows", 0)) if written else 0
        result.rows_read = result.rows_written = rows
    else:
        observation = Observation(f"bronze_{dataset.id}_{run_id}")
        _append(framed.observe(observation, F.count(F.lit(1))), target, marker)
        result.rows_read = result.rows_written = observation.get["count(1)"]
    if "watermark" in marker:
        state.record(spark, env, dataset.id, run_id, watermark=marker["watermark"])
        result.details["watermark"] = marker["watermark"]
