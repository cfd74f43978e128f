"""Silver: typed, checked, deduplicated and merged.

Bronze is read as a Delta stream (checkpoint + available-now trigger), so each bronze row
reaches silver once. Each micro-batch is

1. cast to the declared types (a value that does not fit is a reason, never a silent null),
2. checked by every rule of the quality engine (``quality.py``) in one pass: built-in
   rules (null key, missing required value, cast failure), the contract's and the
   metadata's — failing rows go to the dataset's quarantine table with every reason and
   rule name; a ``fail`` rule stops the dataset before anything is written,
3. reduced to one row per key, the latest by the sequence column,
4. MERGEd into silver: a key's row is never replaced by an older sequence, so replaying a
   batch changes nothing.

Before the first batch the silver table is compared with the schema the contract states;
drift is handled by the dataset's ``on_schema_drift`` policy (fail by default).

Every row read is accounted for: rows read = rows merged + quarantined + duplicates
dropped, checked on every batch. Per-rule counts go to ``ops.dq_metrics``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame, Observation, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import cdc, merges, quality
from lakeline.contracts import SchemaDriftError, schema_drift
from lakeline.datatypes import parse_type
from lakeline.environment import Environment, columns_ddl
from lakeline.errors import LakelineError, ReconciliationError
from lakeline.hdfs import has_files
from lakeline.identifiers import quote
from lakeline.metadata import Dataset, SchemaDriftPolicy
from lakeline.quality import FAILED_RULES, QUARANTINED, RAW, REASONS, RuleSet
from lakeline.runlog import StepResult
from lakeline.session import is_connect
from lakeline.streams import run_batches

LINEAGE = ("_source_file", "_ingested_at")
QUARANTINE_MARKER = "lakeline"


def silver_table(env: Environment, dataset: Dataset) -> str:
    return env.table("silver", dataset.id)


def quarantine_table(env: Environment, dataset: Dataset) -> str:
    return env.table("quarantine", dataset.id)


def silver_schema(dataset: Dataset) -> T.StructType:
    fields = [T.StructField(c.name, parse_type(c.type), True) for c in dataset.columns]
    fields += [
        T.StructField("_source_file", T.StringType(), True),
        T.StructField("_ingested_at", T.TimestampType(), True),
    ]
    # SCD2 validity and the soft-delete flag (cdc.py keeps them).
    fields += [
        T.StructField(name, parse_type(kind), True)
        for name, kind in dataset.added_silver_columns().items()
    ]
    return T.StructType(fields)


QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("record", T.StringType(), True),
        T.StructField("reasons", T.ArrayType(T.StringType()), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("ingested_at", T.TimestampType(), True),
        T.StructField("quarantined_at", T.TimestampType(), False),
        # Added with the quality engine: every quarantine rule the row failed, a row id,
        # and the replay that moved it to silver (both null until then).
        T.StructField("failed_rules", T.ArrayType(T.StringType()), True),
        T.StructField("quarantine_id", T.StringType(), True),
        T.StructField("replay_run_id", T.StringType(), True),
        T.StructField("replayed_at", T.TimestampType(), True),
    ]
)


def silver_properties(dataset: Dataset) -> dict[str, str]:
    """Delta table properties a new silver table is created with.

    Deletion vectors (``deletion_vectors``, on by default): a MERGE that changes a few rows
    in many files marks them deleted and writes only the changed rows, where it would
    otherwise rewrite every file it touches. OPTIMIZE (the maintenance job) rewrites files
    with many deleted rows.
    """
    return {"delta.enableDeletionVectors": "true"} if dataset.deletion_vectors else {}


def ensure_tables(spark, env: Environment, dataset: Dataset) -> bool:
    """Create the silver and quarantine tables, and the tombstone table of a dataset that
    keeps tombstones (``cdc.keeps_tombstones``), if they do not exist yet, all at once.

    A quarantine table from before the quality engine gets its new columns added. True
    when the silver table did not exist before: under the dataset's lock, it is empty.
    """
    had_silver = env.exists(spark, "silver", dataset.id)
    had_quarantine = env.exists(spark, "quarantine", dataset.id)
    tables = [
        ("silver", dataset.id, silver_schema(dataset), silver_properties(dataset)),
        ("quarantine", dataset.id, QUARANTINE_SCHEMA, {}),
    ]
    if cdc.keeps_tombstones(dataset):
        tables.append(("ops", f"{dataset.id}__tombstones", cdc.tombstone_schema(dataset), {}))
    definitions = []
    for schema_name, table, schema, properties in tables:
        # Property names and values are lakeline's own constants, never metadata.
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        clauses = f" TBLPROPERTIES ({settings})" if settings else ""
        definitions.append((schema_name, table, f"{columns_ddl(schema)} USING DELTA{clauses}"))
    # One Delta commit per table: made side by side, their driver work overlaps.
    with ThreadPoolExecutor(
        max_workers=len(definitions), thread_name_prefix="lakeline-create"
    ) as pool:
        made = [pool.submit(env.create, spark, *definition) for definition in definitions]
        for creating in made:
            creating.result()
    if not had_quarantine:
        return not had_silver  # the quarantine was made just now, with every column
    table = quarantine_table(env, dataset)
    have = set(spark.table(table).columns)
    missing = [f for f in QUARANTINE_SCHEMA.fields if f.name not in have]
    if missing:
        columns = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
        # Rows quarantined before there were ids get a deterministic one, for replay.
        merges.update(
            spark,
            table,
            "quarantine_id = sha2(concat_ws('|', record, run_id, source_file, "
            "CAST(quarantined_at AS STRING)), 256)",
            "quarantine_id IS NULL",
        )
    return not had_silver


def check_schema(spark, env: Environment, dataset: Dataset, result: StepResult) -> None:
    """Compare the silver table with the schema the contract states, before any write.

    Drift is reported in the run log (``schema_drift``). Policy ``fail`` stops the dataset;
    ``evolve`` adds the columns the contract added and fails on any other drift.
    """
    table = silver_table(env, dataset)
    drift = schema_drift(silver_schema(dataset), spark.table(table).schema)
    if not drift:
        return
    result.details["schema_drift"] = [str(d) for d in drift]
    added = [d for d in drift if d.kind == "missing in table"]
    if dataset.on_schema_drift is SchemaDriftPolicy.evolve and len(added) == len(drift):
        kinds = {f.name: f.dataType for f in silver_schema(dataset).fields}
        columns = ", ".join(f"{quote(d.column)} {kinds[d.column].simpleString()}" for d in added)
        spark.sql(f"ALTER TABLE {table} ADD COLUMNS ({columns})")
        result.details["schema_evolved"] = [d.column for d in added]
        return
    raise SchemaDriftError(
        f"dataset '{dataset.id}': silver table {table} does not match its contract: "
        + "; ".join(map(str, drift))
        + f". Policy on_schema_drift: {dataset.on_schema_drift.value}; nothing was written. "
        "Migrate the table (or set on_schema_drift: evolve for added columns)."
    )


def classify(frame: DataFrame, dataset: Dataset, rules: RuleSet | None = None) -> DataFrame:
    """The raw columns, their typed values (``__typed_<column>``) and the array ``_reasons``
    of every quarantine rule each row fails (empty when it passes).
    """
    checked = (rules or RuleSet.of(dataset)).evaluate(frame)
    return checked.select(
        *[F.col(RAW).getField(c).alias(c) for c in frame.columns],
        *[F.col(quote(c.name)).alias(f"__typed_{c.name}") for c in dataset.columns],
        REASONS,
        FAILED_RULES,
    )


def latest_per_key(rows: DataFrame, dataset: Dataset, skip: str | None = None) -> DataFrame:
    """One row per primary key: the latest by sequence, then by ingestion time and file.

    With ``skip``, the name of a boolean column, rows where it is true never win and are
    left out (with that column). They are ranked last within their key and dropped after
    the window rather than filtered before it: a filter there would be pushed below the
    typing projection and compute every cast a second time.
    """
    order = [F.col(skip).asc_nulls_last()] if skip else []
    if dataset.sequence_column:
        order.append(F.col(quote(dataset.sequence_column)).desc_nulls_last())
    order += [F.col("_ingested_at").desc(), F.col("_source_file").desc()]
    window = Window.partitionBy(*[quote(k) for k in dataset.primary_key]).orderBy(*order)
    keep = F.col("__rank") == 1
    if skip:
        keep = keep & ~F.col(skip)
    ranked = rows.withColumn("__rank", F.row_number().over(window)).where(keep)
    return ranked.drop("__rank", *([skip] if skip else []))


def _merge(
    spark, env: Environment, dataset: Dataset, latest: DataFrame, empty: bool | None = None
) -> dict:
    """Upsert one row per key into silver; a key's row is never replaced by an older one.

    Returns the rows inserted and updated and, as ``source``, the rows of ``latest``.
    Into an empty silver table (a first load, or one after a backfill) that MERGE is an
    append of the same rows, written as one: no join with the target, and the source is
    read once instead of twice. ``empty`` is what the caller knows of that (None: look).
    """
    table = silver_table(env, dataset)
    session = latest.sparkSession
    if empty is None:
        empty = _is_empty(session, table)
    if empty:
        rows = _append(session, table, latest)
        return {"source": rows, "inserted": rows, "updated": 0}
    on = merges.on_keys(dataset.primary_key)
    newer = ""
    if dataset.sequence_column:
        seq = quote(dataset.sequence_column)
        newer = f"AND (s.{seq} >= t.{seq} OR t.{seq} IS NULL) "
    counts = merges.merge(
        table,
        latest,
        on,
        [f"WHEN MATCHED {newer}THEN UPDATE SET *", "WHEN NOT MATCHED THEN INSERT *"],
    )
    counts["source"] = _merged_source_rows(session, table, latest, counts)
    return counts


def _is_empty(session, table: str) -> bool:
    # About 0.4 s on a 2-core machine (the table's files are listed from its log): skipped
    # when the step made the table itself (``process_batch``'s ``silver_empty``).
    return session.sql(f"DESCRIBE DETAIL {table}").select("numFiles").first()[0] == 0


def _append(session, table: str, rows: DataFrame) -> int:
    """Append ``rows`` to silver by column name, as a MERGE's insert would; how many.

    Counted by an ``Observation`` of the write itself. Over Spark Connect (no Observation
    there) by the commit: an append always commits, and the dataset's lock keeps other
    writers out, so the newest WRITE is this one.
    """
    if not is_connect(session):
        observation = Observation()
        observed = rows.observe(observation, F.count(F.lit(1)).alias("rows"))
        observed.write.format("delta").mode("append").saveAsTable(table)
        return int(observation.get["rows"])
    rows.write.format("delta").mode("append").saveAsTable(table)
    written = merges.newest_commit(session, table, "WRITE")
    return int((written.operationMetrics or {}).get("numOutputRows", 0)) if written else 0


def _merged_source_rows(session, table: str, latest: DataFrame, counts: dict) -> int:
    """How many rows the MERGE's source had: its commit's ``numSourceRows``.

    A MERGE that changed rows committed, and under the dataset's lock its commit is the
    newest MERGE, recognised by its counts. One that changed nothing (a replay, whose rows
    are all older than silver's) may have made no commit: its source is counted instead.
    """
    if counts["inserted"] or counts["updated"]:
        commit = merges.newest_commit(session, table, "MERGE")
        metrics = (commit.operationMetrics or {}) if commit else {}
        if (
            int(metrics.get("numTargetRowsInserted", -1)) == counts["inserted"]
            and int(metrics.get("numTargetRowsUpdated", -1)) == counts["updated"]
        ):
            return int(metrics["numSourceRows"])
    return int(latest.count())  # a Spark Connect 3.5 count() is a numpy.int64


def process_batch(
    spark,
    env: Environment,
    dataset: Dataset,
    batch: DataFrame,
    batch_id: int,
    run_id: str,
    rules: RuleSet | None = None,
    quality_report: dict | None = None,
    *,
    silver_empty: bool | None = None,
) -> dict:
    """Check, quarantine, deduplicate and merge one batch of bronze rows; returns its counts.

    Every rule is evaluated first (one pass for row rules, one aggregation for the counts
    and the dataset rules). A failed ``fail`` rule raises QualityError before the quarantine
    or silver table is touched. ``quality_report``, when given, accumulates the warned rows
    and the rows failed per rule (and, on a failure, the rules that stopped the batch).
    ``silver_empty`` True says the silver table holds no rows (the step made it and this is
    its first batch), so nobody asks the table; None (the default) asks it.
    """
    rules = rules or RuleSet.of(dataset)
    report = quality_report if quality_report is not None else {}
    # Nothing is cached: the counting pass is a plain scan-and-aggregate, the quarantine
    # write reads only when something failed, and Delta materialises the MERGE source once
    # itself. Caching the checked frame (raw and typed values side by side) cost more than
    # all of that together (bench/medallion_tpch.py).
    checked = rules.evaluate(batch)
    first = rules.observable and not is_connect(batch.sparkSession)
    # Whether silver is empty is asked once a batch (a caller's False is not taken: a
    # backfill may empty a table), and what was found goes on to the MERGE.
    empty = True if silver_empty else None
    if first:
        if empty is None:
            empty = _is_empty(spark, silver_table(env, dataset))
        if empty:
            return _first_load(spark, env, dataset, checked, batch, batch_id, run_id, rules, report)
    measures = rules.measure(spark, env, checked)
    total, bad = measures.total, measures.quarantined
    if total == 0:
        return {"read": 0, "quarantined": 0, "duplicates": 0, "merged": 0}
    _count_failed(report, measures)
    quality.stop_on_fail(spark, env, dataset, run_id, batch_id, measures, report)
    source_columns = [c for c in batch.columns if not c.startswith("_")]
    # Only the typed silver columns (and the flag) travel to the MERGE and its shuffle.
    typed = checked.select(*[F.col(quote(c.name)) for c in dataset.columns], *LINEAGE, QUARANTINED)
    with quality.metrics_alongside(spark, env, dataset, run_id, batch_id, measures):
        if bad:
            write_quarantine(
                spark, env, dataset, checked, QUARANTINED, source_columns, run_id, batch_id
            )
        if bad == total:  # nothing for silver
            merged = {"source": 0, "inserted": 0, "updated": 0}
        else:
            latest = latest_per_key(typed, dataset, skip=QUARANTINED)
            merged = _merge(spark, env, dataset, latest, empty)
    return _counts(dataset, batch_id, total, bad, merged)


def _count_failed(report: dict, measures: quality.BatchMeasures) -> None:
    """Add the batch's rows failed per rule to ``report["failed_rules"]``."""
    failed = report.setdefault("failed_rules", {})
    for name, rows in measures.failed_rule_counts().items():
        failed[name] = failed.get(name, 0) + rows


def _counts(dataset: Dataset, batch_id: int, total: int, bad: int, merged: dict) -> dict:
    """A batch's counts; rows read = merged + quarantined + duplicates, or it raises."""
    counts = {
        "read": total,
        "quarantined": bad,
        "duplicates": total - bad - merged["source"],
        "merged": merged["source"],
        "inserted": merged["inserted"],
        "updated": merged["updated"],
        "stale": merged["source"] - merged["inserted"] - merged["updated"],
    }
    if counts["duplicates"] < 0:
        raise ReconciliationError(
            f"dataset '{dataset.id}' batch {batch_id}: {total} rows read but "
            f"{merged['source']} merged and {bad} quarantined"
        )
    return counts


def _first_load(
    spark,
    env: Environment,
    dataset: Dataset,
    checked: DataFrame,
    batch: DataFrame,
    batch_id: int,
    run_id: str,
    rules: RuleSet,
    report: dict,
) -> dict:
    """A batch into an empty silver table (a first load, or one after a backfill) in one
    pass: the rules' counters are observed while the deduplicated rows are appended,
    instead of being counted by a pass of their own first.

    Only for rule sets that cannot stop a batch (``RuleSet.observable``), so nothing has to
    be known before the write. The quarantined rows are written after silver, read again
    only when there are some. A crash in between replays the batch onto a silver table
    that is no longer empty: its MERGE changes nothing and the quarantine is written then.
    """
    table = silver_table(env, dataset)
    names = [quote(c.name) for c in dataset.columns]
    narrow = checked.select(*names, *LINEAGE, *rules.observed_columns())
    observed, observation = rules.observe(narrow, f"silver_{dataset.id}_{run_id}_{batch_id}")
    latest = latest_per_key(observed, dataset, skip=QUARANTINED).select(*names, *LINEAGE)
    rows = _append(spark, table, latest)
    measures = rules.measures_of(observation)
    _count_failed(report, measures)
    quality.stop_on_fail(spark, env, dataset, run_id, batch_id, measures, report)  # warned
    total, bad = measures.total, measures.quarantined
    if total == 0:
        return {"read": 0, "quarantined": 0, "duplicates": 0, "merged": 0}
    with quality.metrics_alongside(spark, env, dataset, run_id, batch_id, measures):
        if bad:
            source_columns = [c for c in batch.columns if not c.startswith("_")]
            write_quarantine(
                spark, env, dataset, checked, QUARANTINED, source_columns, run_id, batch_id
            )
    return _counts(dataset, batch_id, total, bad, {"source": rows, "inserted": rows, "updated": 0})


def write_quarantine(
    spark,
    env: Environment,
    dataset: Dataset,
    checked: DataFrame,
    flag: str,
    source_columns: list[str],
    run_id: str,
    batch_id: int,
) -> None:
    """Append the rows of ``checked`` flagged by the column ``flag`` to the quarantine table.

    The raw record, every reason and rule name, lineage and a row id; written once per
    micro-batch (a batch replayed after a crash finds its commit marker and is skipped).
    """
    record = F.struct(*[F.col(RAW).getField(c).alias(c) for c in source_columns])
    rejects = checked.where(F.col(flag)).select(
        F.to_json(record).alias("record"),
        F.col(REASONS).alias("reasons"),
        F.lit(run_id).alias("run_id"),
        F.col("_source_file").alias("source_file"),
        F.col("_ingested_at").alias("ingested_at"),
        F.current_timestamp().alias("quarantined_at"),
        F.col(FAILED_RULES).alias("failed_rules"),
        F.expr("uuid()").alias("quarantine_id"),
        F.lit(None).cast("string").alias("replay_run_id"),
        F.lit(None).cast("timestamp").alias("replayed_at"),
    )
    marker = json.dumps({QUARANTINE_MARKER: {"batch": batch_id}})
    table = quarantine_table(env, dataset)
    if not _already_written(spark, table, marker):
        rejects.write.format("delta").mode("append").option("userMetadata", marker).saveAsTable(
            table
        )


def _already_written(spark, table: str, marker: str) -> bool:
    rows = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 5").select("userMetadata").collect()
    return any(r[0] == marker for r in rows)


def transform(spark, env: Environment, dataset: Dataset, run_id: str, result: StepResult) -> None:
    """Bring silver up to date with everything in bronze not yet processed."""
    from lakeline.bronze import bronze_table

    rules = RuleSet.of(dataset)
    made_silver = ensure_tables(spark, env, dataset)
    check_schema(spark, env, dataset, result)
    source = bronze_table(env, dataset)
    if not env.exists(spark, "bronze", dataset.id):
        result.details["note"] = "no bronze table yet"
        return
    totals = {
        "read": 0,
        "quarantined": 0,
        "duplicates": 0,
        "merged": 0,
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "stale": 0,
    }

    report: dict = {"warned": 0, "failed_rules": {}}

    # Change feeds, snapshots and SCD2 are applied by cdc.py; other loads upsert here.
    apply = cdc.process_batch if cdc.handles(dataset) else process_batch
    # A silver table this step made holds nothing until its first batch: that batch need not
    # look (the flag is this process's; a batch run beside a Connect server looks).
    unapplied = [made_silver and apply is process_batch and not is_connect(spark)]

    # A batch's counts and quality report come back in ``out`` and are added up here
    # (streams.run_batches: over Spark Connect the batch runs beside the server).
    def each_batch(session, batch: DataFrame, batch_id: int, out: dict) -> None:
        out["report"] = {"warned": 0, "failed_rules": {}}
        hint = {"silver_empty": True} if unapplied[0] else {}
        unapplied[0] = False
        batch_report = out["report"]
        out["counts"] = apply(
            session, env, dataset, batch, batch_id, run_id, rules, batch_report, **hint
        )

    def collect(out: dict) -> None:
        for key, value in out.get("counts", {}).items():
            totals[key] += value
        _add_report(report, out.get("report", {}))

    checkpoint = env.checkpoint(dataset.id, "silver")
    what = f"dataset '{dataset.id}', silver"
    try:
        run_from_bronze(spark, env, source, checkpoint, what, run_id, each_batch, collect)
    finally:
        result.details["warned"] = report["warned"]
        result.details["failed_rules"] = report["failed_rules"]
        if "stopped_by" in report:
            result.details["stopped_by"] = report["stopped_by"]
    result.rows_read = totals["read"]
    result.rows_written = totals["inserted"] + totals["updated"]
    result.details.update(totals)
    if totals["read"] != totals["merged"] + totals["quarantined"] + totals["duplicates"]:
        raise ReconciliationError(f"dataset '{dataset.id}': counts do not reconcile: {totals}")


def run_from_bronze(
    spark, env: Environment, source: str, checkpoint: str, what: str, run_id: str, each, collect
) -> None:
    """``streams.run_batches`` over the bronze table ``source`` as a Delta stream.

    A new checkpoint starts at bronze's first commit (``startingVersion`` 0) rather than at
    a snapshot of the table: bronze is append-only, so its commits hold the same rows,
    and reading them from the log spares the snapshot's file listing and sort (about 0.7 s
    a step on a 2-core machine). When that start fails before any offset was written (the
    log's first commits are past their retention, or a commit no stream may read), the
    stream starts again from a snapshot, as a stream starts by default.
    """
    fresh = not has_files(spark, f"{checkpoint}/offsets")

    def stream(from_first_commit: bool) -> DataFrame:
        reader = spark.readStream.format("delta")
        if from_first_commit:
            reader = reader.option("startingVersion", "0")
        return reader.table(source)

    try:
        run_batches(spark, env, stream(fresh), each, collect, checkpoint, what, run_id)
    except LakelineError:
        if not fresh or has_files(spark, f"{checkpoint}/offsets"):
            raise
        run_batches(spark, env, stream(False), each, collect, checkpoint, what, run_id)


def _add_report(report: dict, batch: dict) -> None:
    """Add one batch's quality report (warned rows, rows failed per rule, the rules that
    stopped it) to the step's."""
    report["warned"] += batch.get("warned", 0)
    for name, rows in batch.get("failed_rules", {}).items():
        report["failed_rules"][name] = report["failed_rules"].get(name, 0) + rows
    if "stopped_by" in batch:
        report["stopped_by"] = batch["stopped_by"]
