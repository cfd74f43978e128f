"""Schema drift at bronze, handled by the dataset's ``schema_evolution`` mode.

The modes mean what Auto Loader's ``cloudFiles.schemaEvolutionMode`` means:

==================  ========================================================================
``addNewColumns``   new columns are added to the stored schema and to bronze; the run goes
                    on with them (Auto Loader stops the stream and the job's retry restarts
                    it with the wider schema: the same end state)
``rescue``          the schema never changes; the values of unknown columns, and (Parquet)
                    values whose type differs from the stored schema's, go to the JSON
                    column ``_rescued_data`` of the row that had them
``failOnNewColumns``the run fails before writing anything, naming the columns and files;
                    it fails again until the schema (metadata) or the file is changed
``none``            new columns are ignored (the default, and lakeline's earlier behaviour):
                    nothing is detected or recorded
==================  ========================================================================

For file sources the files not ingested yet are inspected before the stream starts (JSON
and Parquet by field name; CSV by header, where new columns must come after the known
ones, since CSV rows are read by position). For Delta sources the source table's columns
are compared with bronze's. Every drift found — columns added, removed, retyped — is
appended to ``ops.schema_history`` and reported in the run log (``source_schema_drift``).

``_rescued_data`` holds what Auto Loader's rescued data column holds: a JSON object of
column -> original value for every rescued value of the row, plus ``_file_path``, the file
it came from; it is null for a row with nothing rescued.

Bronze keeps text formats (CSV, JSON) as strings, so a value never fails its type there;
values that do not fit their declared type are quarantined in silver with a reason.
Parquet keeps the types of its files: a Parquet file whose column has another type than the
stored schema (a string where the schema says int) has that column's values rescued under
``rescue`` — the typed column is null in those rows, as in Auto Loader — and stops the run
under ``addNewColumns`` and ``failOnNewColumns``, naming the file and the column, before
anything is written (a Parquet reader cannot read the value as the stored type).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from urllib.parse import urlparse

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import state
from lakeline.environment import Environment
from lakeline.errors import DataError
from lakeline.hdfs import list_files, write_text
from lakeline.identifiers import quote
from lakeline.metadata import Dataset, SchemaEvolution, SourceFormat
from lakeline.runlog import StepResult
from lakeline.streams import planned_files, replayable_batches

RESCUED = "_rescued_data"
HISTORY_TABLE = "schema_history"
_LINEAGE = ("_run_id", "_source_file", "_ingested_at", RESCUED)

_HISTORY = T.StructType(
    [
        T.StructField("dataset", T.StringType(), False),
        T.StructField("layer", T.StringType(), False),
        T.StructField("mode", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("added", T.ArrayType(T.StringType()), False),
        T.StructField("removed", T.ArrayType(T.StringType()), False),
        T.StructField("retyped", T.ArrayType(T.StringType()), False),
        T.StructField("schema", T.StringType(), False),
        T.StructField("files", T.ArrayType(T.StringType()), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)


class SchemaEvolutionError(DataError):
    """New source columns under ``failOnNewColumns`` (or that cannot be read safely)."""


@dataclass(frozen=True)
class Drift:
    added: list[T.StructField] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> dict:
        return {
            "added": [f.name for f in self.added],
            "removed": self.removed,
            "retyped": self.retyped,
        }


def compare(known: T.StructType, seen: T.StructType) -> Drift:
    """Columns of ``seen`` that ``known`` lacks, lacks itself, or types differently."""
    have = {f.name.lower(): f for f in known.fields if f.name not in _LINEAGE}
    now = {f.name.lower(): f for f in seen.fields if f.name not in _LINEAGE}
    return Drift(
        added=[f for k, f in now.items() if k not in have],
        removed=[f.name for k, f in have.items() if k not in now],
        retyped=[
            f"{f.name}: {have[k].dataType.simpleString()} -> {f.dataType.simpleString()}"
            for k, f in now.items()
            if k in have and have[k].dataType != f.dataType
        ],
    )


def history_table(env: Environment) -> str:
    return env.table("ops", HISTORY_TABLE)


def record(
    spark,
    env: Environment,
    dataset: Dataset,
    drift: Drift,
    schema: T.StructType,
    action: str,
    run_id: str,
    result: StepResult,
    files: list[str] | None = None,
) -> None:
    """Append the drift to ``ops.schema_history`` and the step's run-log details."""
    row = (
        dataset.id,
        "bronze",
        dataset.schema_evolution.value,
        action,
        [f.name for f in drift.added],
        drift.removed,
        drift.retyped,
        schema.json(),
        sorted(files or []),
        run_id,
        datetime.now(UTC).replace(tzinfo=None),
    )
    env.create(spark, "ops", HISTORY_TABLE, _HISTORY)
    spark.createDataFrame([row], _HISTORY).write.format("delta").mode("append").saveAsTable(
        history_table(env)
    )
    result.details["source_schema_drift"] = {**drift.describe(), "action": action}


def _decide(dataset: Dataset, drift: Drift, where: str, files: list[str]) -> str:
    mode = dataset.schema_evolution
    if drift.retyped and dataset.source.format is SourceFormat.parquet:
        if mode is SchemaEvolution.rescue:
            return "rescued"
        raise SchemaEvolutionError(
            f"dataset '{dataset.id}': column type changed in {where} "
            f"({'; '.join(drift.retyped)}; files {', '.join(sorted(files)[:5])}); Parquet "
            f"values cannot be read as another type, so nothing was written. Set "
            "schema_evolution to rescue (the values go to _rescued_data), or rewrite the file."
        )
    if not drift.added:
        return "recorded"
    names = ", ".join(f.name for f in drift.added)
    if mode is SchemaEvolution.failOnNewColumns:
        raise SchemaEvolutionError(
            f"dataset '{dataset.id}': new column(s) {names} in {where} "
            f"({', '.join(sorted(files)[:5]) or 'the source table'}); schema_evolution is "
            "failOnNewColumns, so nothing was written. Declare the columns (or change the "
            "mode to addNewColumns / rescue), or remove the file."
        )
    return {
        SchemaEvolution.addNewColumns: "evolved",
        SchemaEvolution.rescue: "rescued",
        SchemaEvolution.none: "ignored",
    }[mode]


def _path(uri: str) -> str:
    return urlparse(uri).path or uri


def _pending_files(spark, env: Environment, dataset: Dataset, folder: str) -> list[str]:
    """The files under ``folder`` bronze has not committed: not in the state table, or in a
    micro-batch its checkpoint planned and did not commit (a batch's files are recorded
    while its rows are appended, so an append that failed leaves them listed)."""
    done = {_path(f) for f in state.get(spark, env, dataset.id, state.FILE)}
    checkpoint = env.checkpoint(dataset.id, "bronze")
    for batch_id in replayable_batches(spark, checkpoint) or ():
        done -= {_path(f) for f in planned_files(spark, checkpoint, batch_id) or ()}
    return [uri for uri in list_files(spark, folder) if _path(uri) not in done]


def _drift(
    spark, dataset: Dataset, known: T.StructType, files: list[str], options: dict
) -> tuple[Drift, list[str]]:
    """How the pending files differ from ``known``, and the files that differ.

    Parquet files are compared one by one (their types may disagree with each other, which
    no merged schema can show); text formats as one schema of string columns.
    """
    fmt = dataset.source.format
    if fmt is SourceFormat.csv:
        names: list[str] = []
        for file in files:
            header = spark.read.options(**options).csv(file).schema.names
            names += [n for n in header if n not in names]
        seen = T.StructType([T.StructField(n, T.StringType(), True) for n in names])
        return compare(known, seen), files
    if fmt is SourceFormat.json:
        found = spark.read.format("json").options(**options).load(files).schema
        seen = T.StructType([T.StructField(f.name, T.StringType(), True) for f in found])
        return compare(known, seen), files
    added: dict[str, T.StructField] = {}
    present: set[str] = set()
    retyped: list[str] = []
    differing: list[str] = []
    for file in files:
        schema = spark.read.format(fmt.value).options(**options).load(file).schema
        drift = compare(known, schema)
        present |= {f.name.lower() for f in schema.fields}
        for f in drift.added:
            added.setdefault(f.name.lower(), f)
        retyped += [r for r in drift.retyped if r not in retyped]
        if drift.added or drift.retyped:
            differing.append(file)
    removed = [
        f.name for f in known.fields if f.name not in _LINEAGE and f.name.lower() not in present
    ]
    return Drift(list(added.values()), removed, retyped), differing or files


def _csv_appended(spark, dataset, files, known: T.StructType, options: dict) -> None:
    """CSV rows are read by position: new columns must come after the known ones."""
    for file in files:
        header = spark.read.options(**options).csv(file).schema.names
        if header[: len(known.names)] != known.names[: len(header)]:
            raise SchemaEvolutionError(
                f"dataset '{dataset.id}': the header of {file} does not start with the known "
                f"columns {known.names}; a CSV file's new columns must come after them"
            )


def file_schema(
    spark,
    env: Environment,
    dataset: Dataset,
    folder: str,
    known: T.StructType,
    schema_file: str,
    options: dict,
    run_id: str,
    result: StepResult,
) -> tuple[T.StructType, list[str]]:
    """The schema to read the pending files with, and the columns to rescue from them.

    ``schema_file`` is the stored schema (Auto Loader's schema location); an evolution
    rewrites it. Raises SchemaEvolutionError under ``failOnNewColumns``.
    """
    if dataset.schema_evolution is SchemaEvolution.none:
        return known, []
    files = _pending_files(spark, env, dataset, folder)
    if not files:
        return known, []
    drift, files = _drift(spark, dataset, known, files, options)
    if not drift:
        return known, []
    action = _decide(dataset, drift, folder, files)
    wider = T.StructType([*known.fields, *drift.added])
    if drift.added and dataset.source.format is SourceFormat.csv:
        _csv_appended(spark, dataset, files, known, options)
    record(spark, env, dataset, drift, wider, action, run_id, result, files)
    if action == "evolved":
        write_text(spark, schema_file, wider.json())
        return wider, []
    if action == "rescued":
        return wider, [f.name for f in drift.added]
    return known, []


def _rescued(values: list[F.Column], file_path: F.Column) -> F.Column:
    """The ``_rescued_data`` value: the non-null ``values`` (aliased by column) and
    ``_file_path`` as one JSON object; null when every value is null."""
    if not values:
        return F.lit(None).cast("string")
    present = reduce(lambda a, b: a | b, [v.isNotNull() for v in values])
    packed = F.to_json(F.struct(*values, file_path.alias("_file_path")))
    return F.when(present, packed)


def rescue(frame: DataFrame, columns: list[str], file_path: str = "_source_file") -> DataFrame:
    """Move ``columns`` into the JSON column ``_rescued_data`` (null when all are null)."""
    if not columns:
        return frame
    values = [F.col(quote(c)).alias(c) for c in columns]
    kept = [quote(c) for c in frame.columns if c not in columns and c != RESCUED]
    return frame.select(*kept, _rescued(values, F.col(quote(file_path))).alias(RESCUED))


# The stream schema when each batch's files are read again by read_fitting: a column no file
# has, so the stream's own scan never reads (and never fails on) a value.
FILES_ONLY = T.StructType([T.StructField("__lakeline_no_column", T.StringType(), True)])


def rescues_types(dataset: Dataset) -> bool:
    """Whether bronze rescues values whose type differs from the stored schema (Parquet)."""
    return (
        dataset.schema_evolution is SchemaEvolution.rescue
        and dataset.source.format is SourceFormat.parquet
    )


def read_fitting(
    spark, files: list[str], schema: T.StructType, unknown: list[str], options: dict
) -> DataFrame:
    """The rows of Parquet ``files`` in ``schema``, with ``_source_file`` and
    ``_rescued_data``: a value whose file type differs from the schema's, and a value of an
    ``unknown`` column, is rescued (the typed column is null), as Auto Loader's rescue mode.

    Files with the same schema are read together; each group keeps its own types.
    """
    groups: dict[str, tuple[T.StructType, list[str]]] = {}
    for file in sorted(files):
        own = spark.read.options(**options).parquet(file).schema
        groups.setdefault(own.json(), (own, []))[1].append(file)
    wanted = [f for f in schema.fields if f.name not in unknown and f.name not in _LINEAGE]
    frames = []
    for own, members in groups.values():
        types = {f.name.lower(): f for f in own.fields}
        frame = spark.read.options(**options).schema(own).parquet(*members)
        columns, rescued = [], []
        for want in wanted:
            found = types.get(want.name.lower())
            if found is not None and found.dataType == want.dataType:
                columns.append(F.col(quote(found.name)).alias(want.name))
            else:
                columns.append(F.lit(None).cast(want.dataType).alias(want.name))
                if found is not None:
                    rescued.append(F.col(quote(found.name)).alias(want.name))
        known = {f.name.lower() for f in wanted}
        rescued += [F.col(quote(f.name)).alias(f.name) for f in own if f.name.lower() not in known]
        path = F.col("_metadata.file_path")
        frames.append(
            frame.select(
                *columns, path.alias("_source_file"), _rescued(rescued, path).alias(RESCUED)
            )
        )
    return reduce(lambda a, b: a.unionByName(b), frames)


def align_bronze(spark, env: Environment, table: str, frame_schema: T.StructType) -> list[str]:
    """Add to bronze the columns ``frame_schema`` has and the table lacks (evolution, rescue)."""
    have = {c.lower() for c in spark.table(table).columns}
    missing = [f for f in frame_schema.fields if f.name.lower() not in have]
    if missing:
        columns = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
    return [f.name for f in missing]


def delta_frame(
    spark,
    env: Environment,
    dataset: Dataset,
    frame: DataFrame,
    table: str,
    run_id: str,
    result: StepResult,
) -> DataFrame:
    """A Delta source's rows shaped for bronze under the dataset's mode."""
    if dataset.schema_evolution is SchemaEvolution.none:
        return frame
    known = spark.table(table).schema
    drift = compare(known, frame.schema)
    if not drift:
        return frame
    action = _decide(dataset, drift, "the source table", [])
    record(spark, env, dataset, drift, frame.schema, action, run_id, result)
    added = [f.name for f in drift.added]
    if action == "evolved":
        align_bronze(spark, env, table, T.StructType(drift.added))
        return frame
    if action == "rescued":
        rescued = rescue(frame, added)
        align_bronze(spark, env, table, T.StructType([rescued.schema[RESCUED]]))
        return rescued
    return frame.drop(*added)


def schema_location(env: Environment, dataset: Dataset) -> str:
    return posixpath.join(env.checkpoint(dataset.id, "bronze"), "_schemas", "0.json")


def describe(drift: Drift) -> str:
    return json.dumps(drift.describe())
