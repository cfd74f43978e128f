"""Change data capture into silver: change feeds (load type ``cdc``) and full snapshots
(load type ``snapshot``), kept as SCD type 1 or type 2.

A **change feed** row carries an operation (the dataset's ``cdc.operation_column``, whose
insert / update / delete values are configurable) and one or more sequence columns
(``cdc.sequence_by``, most significant first). Events arrive out of order, twice, and late;
the sequence alone decides which one wins, never the arrival order.

* **SCD1**: the batch is reduced to one change per key (the latest by sequence; with
  ``ignore_null_updates`` an update keeps the values a null does not replace) and applied
  with one Delta MERGE. A key's row is never replaced by an older sequence, so a replayed
  batch changes nothing. A delete removes the row (``hard``) or sets the flag column
  (``soft``); a hard delete leaves a tombstone (``ops.<dataset>__tombstones``) so an older
  change arriving after it cannot bring the key back. A soft-deleted row keeps the
  delete's sequence, which does the same.
* **SCD2**: validity comes from the event time — the first sequence column —, not from
  processing time. For the keys a batch touches, the history in silver and the new events
  are merged into one timeline and the validity intervals recomputed: a late change splits
  the interval it falls into, a delete closes the current version (its ``valid_to`` is the
  delete's time and no version is current). The result is MERGEd on (key, valid_from),
  so replaying a batch leaves the table as it is.
  With tracked columns (``scd.track_history`` / ``track_history_except``) only an event
  that changes a tracked column, or follows a delete, opens a version; any other event
  joins the version before it, whose other columns and lineage then come from the latest
  event in it (by sequence). A stored version that a late event makes redundant is
  deleted in the same MERGE.

A **snapshot** is every row of the source at one moment (one bronze run). It is compared
with the current silver state: new keys become inserts, changed rows updates and missing
keys deletes, applied as above with the snapshot's ingestion time as the event time.

Rows a delete cannot do without (key, sequence) and rows of other operations that fail
the quality rules are quarantined with reasons, like any silver row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import merges, quality
from lakeline.datatypes import parse_type
from lakeline.environment import Environment
from lakeline.errors import ReconciliationError
from lakeline.identifiers import quote
from lakeline.metadata import Cdc, Dataset, DeleteMode, LoadType
from lakeline.quality import FAILED_RULES, QUARANTINED, RAW, REASONS, WARNED, RuleSet
from lakeline.session import in_thread

OP = "__op"
EVENT_TIME = "__event_time"
INSERT, UPDATE, DELETE = "insert", "update", "delete"
LINEAGE = ("_source_file", "_ingested_at")
_PRIORITY = "__priority"
CARRIED = "__carried"
BAD = "__bad"
MEASURED = "__measured"
_GONE = "__gone"


@dataclass(frozen=True)
class Counts:
    read: int = 0
    quarantined: int = 0
    duplicates: int = 0
    merged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "merged": self.merged,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "stale": 0,
        }


def settings(dataset: Dataset) -> Cdc:
    return dataset.cdc or Cdc()


def handles(dataset: Dataset) -> bool:
    """Whether silver for this dataset is kept by this module rather than the plain upsert."""
    return dataset.load.type in (LoadType.cdc, LoadType.snapshot) or dataset.scd.type == 2


def keeps_tombstones(dataset: Dataset) -> bool:
    """Whether deletes leave tombstones: SCD1 ordered by a sequence, with hard deletes. A
    soft-deleted row keeps its key and the delete's sequence in silver itself, so the MERGE
    already refuses the older changes a tombstone would."""
    return (
        dataset.scd.type != 2
        and bool(_sequence(dataset))
        and settings(dataset).delete_mode is DeleteMode.hard
    )


def tombstone_table(env: Environment, dataset: Dataset) -> str:
    return env.table("ops", f"{dataset.id}__tombstones")


def tombstone_schema(dataset: Dataset) -> T.StructType:
    """A tombstone: the deleted key and the delete's sequence, typed as in silver."""
    types = {c.name: parse_type(c.type) for c in dataset.columns}
    return T.StructType(
        [T.StructField(n, types[n], True) for n in [*_keys(dataset), *_sequence(dataset)]]
    )


def _c(name: str, alias: str | None = None) -> F.Column:
    return F.col(f"{alias}.{quote(name)}" if alias else quote(name))


def _sql(name: str, alias: str) -> str:
    """``alias.name`` as SQL text, the name quoted."""
    return f"{alias}.{quote(name)}"


def _set(values: dict[str, str]) -> str:
    """``UPDATE SET`` assignments from quoted column names to SQL expressions."""
    return ", ".join(f"{column} = {value}" for column, value in values.items())


def _insert(values: dict[str, str]) -> str:
    return f"INSERT ({', '.join(values)}) VALUES ({', '.join(values.values())})"


def _keys(dataset: Dataset) -> list[str]:
    return list(dataset.primary_key)


def _values(dataset: Dataset) -> list[str]:
    return [c.name for c in dataset.columns if c.name not in dataset.primary_key]


def _sequence(dataset: Dataset) -> list[str]:
    return list(settings(dataset).sequence_by) if dataset.load.type is LoadType.cdc else []


def newer_or_same(columns: list[str], new: str = "s", old: str = "t") -> F.Column:
    """``new`` is at least as late as ``old`` comparing the sequence columns in order
    (an old row without a sequence is always older)."""
    result = F.lit(True)
    for column in reversed(columns):
        a, b = _c(column, new), _c(column, old)
        result = (a > b) | ((a == b) & result)
    return F.coalesce(result, _c(columns[0], old).isNull()) if columns else F.lit(True)


def newer_or_same_sql(columns: list[str], new: str = "s", old: str = "t") -> str:
    """``newer_or_same`` as SQL text, for a MERGE condition."""
    result = "true"
    for column in reversed(columns):
        a, b = _sql(column, new), _sql(column, old)
        result = f"({a} > {b} OR ({a} = {b} AND {result}))"
    return f"coalesce({result}, {_sql(columns[0], old)} IS NULL)" if columns else "true"


def operation(dataset: Dataset, raw: F.Column) -> F.Column:
    """insert / update / delete from the source's operation value; null when unknown."""
    cdc = settings(dataset)
    value = raw.cast("string")
    return (
        F.when(value.isin(*cdc.delete_values), F.lit(DELETE))
        .when(value.isin(*cdc.update_values), F.lit(UPDATE))
        .when(value.isin(*cdc.insert_values), F.lit(INSERT))
    )


# --------------------------------------------------------------------------- checking


def classify(dataset: Dataset, batch: DataFrame, rules: RuleSet) -> tuple[DataFrame, DataFrame]:
    """A batch of changes checked as a change feed, without writing anything.

    Returns every row with its raw record (``__raw``), typed columns, lineage, ``_run_id``,
    ``__op``, ``_reasons``, ``_failed_rules`` and ``__bad`` (true = quarantine it), plus the
    columns ``RuleSet.measure`` reads, for ``rules`` on the non-delete rows (``__measured``
    true; the flags are false on deletes); and the non-delete rows as ``RuleSet.evaluate``
    returns them.

    Deletes are checked for their key and sequence only (a delete usually carries nothing
    else); other changes by every quality rule. An unknown operation and a missing
    sequence are reasons too.
    """
    sequence = _sequence(dataset)
    if "_run_id" not in batch.columns:
        batch = batch.withColumn("_run_id", F.lit(None).cast("string"))
    if dataset.load.type is LoadType.cdc:
        source_op = settings(dataset).operation_column or ""
        framed = batch.withColumn(OP, operation(dataset, batch[quote(source_op)]))
    else:
        framed = batch.withColumn(OP, F.lit(UPDATE))
    is_delete = F.coalesce(F.col(OP) == DELETE, F.lit(False))
    needed = set(_keys(dataset)) | set(sequence)
    delete_rules = RuleSet.of(
        dataset, [r for r in quality.builtin_rules(dataset) if r.column in needed]
    )
    upserts = rules.evaluate(framed.where(~is_delete))
    deletes = delete_rules.evaluate(framed.where(is_delete))

    flags = [quality.flag_column(i) for i, _ in rules.row_rules]

    def shaped(checked: DataFrame, measured: bool) -> DataFrame:
        op = F.col(RAW).getField(OP)
        extra = [F.when(op.isNull(), F.lit("unknown operation (not in the cdc values)"))]
        extra += [
            F.when(F.col(quote(s)).isNull(), F.lit(f"sequence column '{s}' is null"))
            for s in sequence
        ]
        more = F.filter(F.array(*extra), lambda x: x.isNotNull()) if extra else F.array()
        reasons = F.array_distinct(F.concat(F.col(REASONS), more.cast("array<string>")))
        # Said without the arrays (a reason of its own is an unknown operation or a missing
        # sequence), so a filter on it pushed under this projection stays small to plan.
        bad = reduce(
            lambda a, b: a | b,
            [F.col(QUARANTINED), op.isNull()] + [F.col(quote(s)).isNull() for s in sequence],
        )
        return checked.select(
            RAW,
            *[quote(c.name) for c in dataset.columns],
            *LINEAGE,
            F.col(RAW).getField("_run_id").alias("_run_id"),
            op.alias(OP),
            reasons.alias(REASONS),
            FAILED_RULES,
            bad.alias(BAD),
            *[
                (F.col(f) if measured else F.lit(False)).alias(f)
                for f in [*flags, QUARANTINED, WARNED]
            ],
            F.lit(measured).alias(MEASURED),
        )

    return shaped(upserts, True).unionByName(shaped(deletes, False)), upserts


@dataclass(frozen=True)
class _Checked:
    """A checked batch: its valid changes and what the one counting pass found."""

    changes: DataFrame  # every row: typed columns, lineage, ``_run_id``, ``__op``, ``__bad``
    good: DataFrame  # the valid ones, without ``__bad``
    read: int
    quarantined: int
    applied: int  # valid changes with a distinct key (SCD1) or key and event time (SCD2)
    deletes: int  # valid deletes
    measures: quality.BatchMeasures  # for ops.dq_metrics, written alongside the MERGE


def _check(
    spark,
    env: Environment,
    dataset: Dataset,
    batch: DataFrame,
    batch_id: int,
    run_id: str,
    rules: RuleSet,
    report: dict,
) -> _Checked:
    """Check a batch by ``classify``, with the rules' counters and the batch's own counts in
    one uncached aggregation; rejects go to quarantine with reasons (only read when a row
    failed). A failed ``fail`` rule stops the batch before anything is written. The
    metrics are the caller's to record (``quality.metrics_alongside``).
    """
    from lakeline import silver

    checked, _ = classify(dataset, batch, rules)
    valid = ~F.col(BAD)
    extra = {
        "__read": F.count(F.lit(1)),
        "__bad": F.count(F.when(F.col(BAD), 1)),
        "__deletes": F.count(F.when(valid & (F.col(OP) == DELETE), 1)),
    }
    if dataset.load.type is LoadType.cdc:
        applied = [_c(k) for k in _keys(dataset)]
        if dataset.scd.type == 2:
            applied.append(_c(_sequence(dataset)[0]))  # the event time
        extra["__applied"] = F.count_distinct(F.when(valid, F.struct(*applied)))
    measures = rules.measure(spark, env, checked, within=F.col(MEASURED), extra=extra)
    row = measures.row
    quality.stop_on_fail(spark, env, dataset, run_id, batch_id, measures, report)
    bad = int(row["__bad"])
    if bad:
        source_columns = [c for c in batch.columns if not c.startswith("_")]
        silver.write_quarantine(spark, env, dataset, checked, BAD, source_columns, run_id, batch_id)
    changes = checked.select(*[_c(c.name) for c in dataset.columns], *LINEAGE, "_run_id", OP, BAD)
    good = changes.where(valid).drop(BAD)
    read = int(row["__read"])
    applied = int(row.get("__applied", read - bad))  # a snapshot applies every valid row
    return _Checked(changes, good, read, bad, applied, int(row["__deletes"]), measures)


# --------------------------------------------------------------------------- SCD1


def latest_change_per_key(
    changes: DataFrame, dataset: Dataset, skip: str | None = None
) -> DataFrame:
    """One change per key: the latest by sequence (then ingestion time, then file).

    With ``ignore_null_updates``, a column the latest update leaves null takes the last
    non-null value of the updates since the key's last insert or delete in the batch.

    With ``skip``, the name of a boolean column, rows where it is true never win and are
    left out (with that column). They are ranked last within their key and dropped after
    the window rather than filtered before it: a filter there is pushed under the checking
    projection, which makes the plan several times slower to optimise. (With
    ``ignore_null_updates`` or soft deletes, whose windows read the other changes of a key,
    they are filtered first.)
    """
    cdc = settings(dataset)
    if skip and (cdc.ignore_null_updates or cdc.delete_mode is DeleteMode.soft):
        changes, skip = changes.where(~F.col(skip)).drop(skip), None
    sequence = _sequence(dataset)
    order = [_c(s).asc_nulls_first() for s in sequence]
    order += [F.col("_ingested_at").asc(), F.col("_source_file").asc()]
    keys = [_c(k) for k in _keys(dataset)]
    frame = changes
    if settings(dataset).ignore_null_updates:
        boundary = F.when(F.col(OP) != UPDATE, 1).otherwise(0)
        upto = Window.partitionBy(*keys).orderBy(*order).rowsBetween(Window.unboundedPreceding, 0)
        frame = frame.withColumn("__segment", F.sum(boundary).over(upto))
        segment = (
            Window.partitionBy(*keys, F.col("__segment"))
            .orderBy(*order)
            .rowsBetween(Window.unboundedPreceding, 0)
        )
        frame = frame.select(
            *[_c(k) for k in _keys(dataset)],
            *[
                F.last(_c(v), ignorenulls=True).over(segment).alias(v)
                if v not in sequence
                else _c(v)
                for v in _values(dataset)
            ],
            *LINEAGE,
            OP,
        )
    if settings(dataset).delete_mode is DeleteMode.soft:
        # A soft-deleted row keeps the values of the change before its delete, so a key
        # changed and deleted in one batch ends as it would over two batches.
        kept = [v for v in _values(dataset) if v not in sequence]
        before = (
            Window.partitionBy(*keys).orderBy(*order).rowsBetween(Window.unboundedPreceding, -1)
        )
        last = F.last(F.when(F.col(OP) != DELETE, F.struct(*[_c(v) for v in kept])), True)
        frame = frame.withColumn(CARRIED, F.when(F.col(OP) == DELETE, last.over(before)))
        frame = frame.select(
            *[
                F.when(F.col(CARRIED).isNotNull(), F.col(CARRIED).getField(c.name))
                .otherwise(_c(c.name))
                .alias(c.name)
                if c.name in kept
                else _c(c.name)
                for c in dataset.columns
            ],
            *LINEAGE,
            OP,
            F.col(CARRIED).isNotNull().alias(CARRIED),
        )
    newest = [F.col(skip).asc()] if skip else []
    newest += [_c(s).desc_nulls_last() for s in sequence]
    newest += [F.col("_ingested_at").desc(), F.col("_source_file").desc()]
    latest = Window.partitionBy(*keys).orderBy(*newest)
    keep = F.col("__rank") == 1
    if skip:
        keep = keep & ~F.col(skip)
    ranked = frame.withColumn("__rank", F.row_number().over(latest)).where(keep)
    return ranked.drop("__rank", *([skip] if skip else []))


def _tombstones(spark, env: Environment, dataset: Dataset, changes: DataFrame, stale: F.Column):
    """``changes`` (as ``s``) without those ``stale`` says a tombstone (``t``) of their key
    outdates; all of them when the dataset has no tombstones (yet)."""
    if not keeps_tombstones(dataset) or not env.exists(spark, "ops", f"{dataset.id}__tombstones"):
        return changes
    tombs = spark.table(tombstone_table(env, dataset)).alias("t")
    on = reduce(lambda a, b: a & b, [_c(k, "s") == _c(k, "t") for k in _keys(dataset)])
    return changes.alias("s").join(tombs, on & stale, "left_anti")


def _drop_tombstoned(spark, env: Environment, dataset: Dataset, latest: DataFrame) -> DataFrame:
    """Changes no later than a delete already applied to their key are stale.

    A delete at the very sequence of a tombstone is that delete again and goes through:
    applying it twice changes nothing, and its tombstone may have been recorded beside a
    MERGE that never committed (``merge_scd1`` writes both at once).
    """
    sequence = _sequence(dataset)
    same = reduce(lambda a, b: a & b, [_c(c, "s") == _c(c, "t") for c in sequence], F.lit(True))
    stale = newer_or_same(sequence, "t", "s") & ((_c(OP, "s") != DELETE) | ~same)
    return _tombstones(spark, env, dataset, latest, stale)


def untombstoned_deletes(spark, env: Environment, dataset: Dataset, latest: DataFrame):
    """The deletes among ``latest`` (key and sequence) that no tombstone of their key at the
    same or a later sequence records yet: the tombstones still to write."""
    deletes = latest.where(F.col(OP) == DELETE).select(*_keys(dataset), *_sequence(dataset))
    return _tombstones(spark, env, dataset, deletes, newer_or_same(_sequence(dataset), "t", "s"))


def _record_tombstones(spark, env: Environment, dataset: Dataset, latest: DataFrame) -> None:
    """Append a tombstone (key and sequence) for every delete among ``latest`` that has
    none yet (``untombstoned_deletes``): a delete applied again adds nothing twice. A key
    deleted again later has a tombstone per delete; the latest one decides.
    """
    if not keeps_tombstones(dataset):
        return
    # Made with silver (silver.ensure_tables); here too for a table from before that.
    env.create(spark, "ops", f"{dataset.id}__tombstones", tombstone_schema(dataset))
    deletes = untombstoned_deletes(spark, env, dataset, latest)
    deletes.write.format("delta").mode("append").saveAsTable(tombstone_table(env, dataset))


def merge_scd1(
    spark, env: Environment, dataset: Dataset, latest: DataFrame, deletes: bool = True
) -> dict[str, int]:
    """Apply one change per key to the SCD1 silver table with one MERGE, recording the
    tombstones of its deletes alongside (``deletes=False``: the changes have none).
    """
    from lakeline.silver import silver_table

    cdc = settings(dataset)
    sequence = _sequence(dataset)
    latest = _drop_tombstoned(spark, env, dataset, latest)
    on = merges.on_keys(_keys(dataset))
    newer = newer_or_same_sql(sequence)
    is_delete = f"({_sql(OP, 's')} = '{DELETE}')"
    is_update = f"({_sql(OP, 's')} = '{UPDATE}')"
    soft = cdc.delete_mode is DeleteMode.soft
    lineage = {quote(c): _sql(c, "s") for c in LINEAGE}
    values = {}
    for column in _values(dataset):
        new = _sql(column, "s")
        if cdc.ignore_null_updates and column not in sequence:
            new = f"CASE WHEN {is_update} THEN coalesce({new}, {_sql(column, 't')}) ELSE {new} END"
        values[quote(column)] = new
    flag = {quote(cdc.deleted_column): "false"} if soft else {}
    clauses = []
    if soft:
        closed = {quote(c): _sql(c, "s") for c in sequence}
        carried = _sql(CARRIED, "s")
        closed.update(
            {
                quote(v): f"CASE WHEN {carried} THEN {_sql(v, 's')} ELSE {_sql(v, 't')} END"
                for v in _values(dataset)
                if v not in sequence
            }
        )
        deleted = {**closed, **lineage, quote(cdc.deleted_column): "true"}
        clauses.append(f"WHEN MATCHED AND {is_delete} AND {newer} THEN UPDATE SET {_set(deleted)}")
    else:
        clauses.append(f"WHEN MATCHED AND {is_delete} AND {newer} THEN DELETE")
    changed = {**values, **lineage, **flag}
    clauses.append(f"WHEN MATCHED AND NOT {is_delete} AND {newer} THEN UPDATE SET {_set(changed)}")
    insert = {quote(c.name): _sql(c.name, "s") for c in dataset.columns}
    if soft:  # a delete of a key silver has not seen stays as a flagged row
        insert = {**insert, **lineage, quote(cdc.deleted_column): is_delete}
        clauses.append(f"WHEN NOT MATCHED THEN {_insert(insert)}")
    else:
        clauses.append(
            f"WHEN NOT MATCHED AND NOT {is_delete} THEN {_insert({**insert, **lineage})}"
        )
    if not deletes:
        return merges.merge(silver_table(env, dataset), latest, on, clauses)
    # The tombstones are appended while the MERGE runs: two commits to two tables, which
    # overlap on the driver instead of adding up. Either may commit without the other when
    # a run stops; the replayed batch applies its deletes again (``_drop_tombstoned``) and
    # records only the tombstones missing.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakeline-tombstones") as pool:
        record = in_thread(latest.sparkSession, _record_tombstones)
        recording = pool.submit(record, spark, env, dataset, latest)
        try:
            counts = merges.merge(silver_table(env, dataset), latest, on, clauses)
        except BaseException:
            recording.exception()  # waited for; the MERGE's error is the one raised
            raise
        recording.result()
    return counts


# --------------------------------------------------------------------------- SCD2


def _timeline(
    spark, env: Environment, dataset: Dataset, events: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """Every version of every key the events touch, with recomputed validity; and the
    stored rows of those keys (persisted: unpersist them after use)."""
    from lakeline.silver import silver_table

    scd = dataset.scd
    keys = _keys(dataset)
    names = [c.name for c in dataset.columns]
    vf, vt, cur = scd.valid_from_column, scd.valid_to_column, scd.current_column
    touched = events.select(*keys).distinct()
    existing = spark.table(silver_table(env, dataset)).join(touched, keys, "left_semi")
    existing = existing.persist()
    # Deletes are not rows of an SCD2 table: a closed interval nobody continues is one.
    starts = existing.select(*keys, F.col(quote(vf)).alias("__start"))
    ends = existing.where(_c(vt).isNotNull()).select(*keys, F.col(quote(vt)).alias("__start"))
    deleted = ends.join(starts, [*keys, "__start"], "left_anti")
    blank = [F.lit(None).cast(f.dataType).alias(f.name) for f in existing.schema.fields]
    by_name = {f.name: b for f, b in zip(existing.schema.fields, blank, strict=True)}
    old_deletes = deleted.select(
        *[_c(k) for k in keys],
        *[by_name[n] for n in names if n not in keys],
        *[by_name[c] for c in LINEAGE],
        F.lit(DELETE).alias(OP),
        F.col("__start").alias(EVENT_TIME),
        F.lit(0).alias(_PRIORITY),
    )
    old_versions = existing.select(
        *[_c(n) for n in names],
        *LINEAGE,
        F.lit(UPDATE).alias(OP),
        _c(vf).alias(EVENT_TIME),
        F.lit(0).alias(_PRIORITY),
    )
    new = events.select(
        *[_c(n) for n in names], *LINEAGE, OP, EVENT_TIME, F.lit(1).alias(_PRIORITY)
    )
    timeline = new.unionByName(old_versions).unionByName(old_deletes.select(*new.columns))
    # One event per key and event time decides what happens then: the new one over the
    # stored, then the latest.
    order = [F.col(_PRIORITY).desc()]
    order += [_c(s).desc_nulls_last() for s in _sequence(dataset)]
    order += [F.col("_ingested_at").desc_nulls_last(), F.col("_source_file").desc_nulls_last()]
    key_columns = [_c(k) for k in keys]
    same = Window.partitionBy(*key_columns, F.col(EVENT_TIME)).orderBy(*order)
    timeline = timeline.withColumn("__rank", F.row_number().over(same))
    # Those deciding events, in time order, open versions: a delete ends one; an event opens
    # one after a delete, or (with tracked columns) when a tracked column differs from the
    # previous deciding event, else it joins the version before it.
    tracked = dataset.tracked_columns()
    in_time = Window.partitionBy(*key_columns).orderBy(F.col(EVENT_TIME), F.col("__rank"))
    deciding = F.col("__rank") == 1
    is_delete = F.col(OP) == DELETE
    if tracked is None:
        opens = F.lit(True)
    else:
        state = F.struct(F.col(OP).alias("op"), *[_c(c) for c in tracked])
        before = F.last(F.when(deciding, state), ignorenulls=True).over(
            in_time.rowsBetween(Window.unboundedPreceding, -1)
        )
        differs = reduce(
            lambda a, b: a | b,
            [~_c(c).eqNullSafe(before.getField(c)) for c in tracked],
            F.lit(False),
        )
        opens = before.isNull() | (before.getField("op") == DELETE) | is_delete | differs
    timeline = timeline.withColumn(
        "__version",
        F.sum(F.when(deciding & opens, 1).otherwise(0)).over(
            in_time.rowsBetween(Window.unboundedPreceding, 0)
        ),
    )
    # A version keeps its deciding event's tracked columns; every other column (and the
    # lineage) comes from the latest event in it. Without tracked columns a version is the
    # one deciding event.
    version = Window.partitionBy(*key_columns, F.col("__version"))
    first = version.orderBy(F.col(EVENT_TIME), F.col("__rank")).rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    if tracked is None:
        latest = [F.col("__rank").asc()]
    else:
        latest = [_c(s).desc_nulls_last() for s in _sequence(dataset)]
        latest += [F.col("_ingested_at").desc_nulls_last(), F.col(_PRIORITY).desc()]
        latest += [F.col("_source_file").desc_nulls_last()]
    chosen = version.orderBy(is_delete.asc(), *latest)
    timeline = (
        timeline.withColumn("__start", F.min(EVENT_TIME).over(version))
        .withColumn("__opening", F.first(F.struct(OP, *[_c(c) for c in tracked or []])).over(first))
        .withColumn("__pick", F.row_number().over(chosen))
        .where("__pick = 1")
    )
    following = Window.partitionBy(*key_columns).orderBy(F.col("__start"))
    timeline = timeline.withColumn("__next", F.lead("__start").over(following))
    opening = F.col("__opening")
    versions = timeline.where(opening.getField(OP) != DELETE).select(
        *[opening.getField(n).alias(n) if n in (tracked or []) else _c(n) for n in names],
        *LINEAGE,
        F.col("__start").alias(vf),
        F.col("__next").alias(vt),
        F.col("__next").isNull().alias(cur),
    )
    return versions, existing


def merge_scd2(spark, env: Environment, dataset: Dataset, events: DataFrame) -> dict[str, int]:
    """Apply change events (``__op``, ``__event_time``) to the SCD2 silver table."""
    from lakeline.silver import silver_table

    scd = dataset.scd
    versions, existing = _timeline(spark, env, dataset, events)
    match = [*_keys(dataset), scd.valid_from_column]
    on = merges.on_keys(match)
    # A stored version that no longer starts one (it joined the version before it) goes.
    gone = existing.join(versions.select(*match), match, "left_anti").select(*versions.columns)
    source = versions.withColumn(_GONE, F.lit(False)).unionByName(
        gone.withColumn(_GONE, F.lit(True))
    )
    compared = [c.name for c in dataset.columns] + [scd.valid_to_column, scd.current_column]
    changed = " OR ".join(f"NOT ({_sql(c, 't')} <=> {_sql(c, 's')})" for c in compared)
    values = {quote(c): _sql(c, "s") for c in versions.columns}
    gone_flag = _sql(_GONE, "s")
    clauses = [
        f"WHEN MATCHED AND {gone_flag} THEN DELETE",
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET {_set(values)}",
        f"WHEN NOT MATCHED AND NOT {gone_flag} THEN {_insert(values)}",
    ]
    try:
        return merges.merge(silver_table(env, dataset), source, on, clauses)
    finally:
        existing.unpersist()


# --------------------------------------------------------------------------- snapshots


def snapshot_changes(spark, env: Environment, dataset: Dataset, snapshot: DataFrame) -> DataFrame:
    """Inserts, updates and deletes that turn the current silver state into ``snapshot``.

    ``snapshot`` has the typed columns, the lineage and ``__event_time``; unchanged keys
    produce nothing.
    """
    from lakeline.silver import silver_table

    keys = _keys(dataset)
    values = _values(dataset)
    current = spark.table(silver_table(env, dataset))
    if dataset.scd.type == 2:
        current = current.where(_c(dataset.scd.current_column))
    elif dataset.cdc is not None and dataset.cdc.delete_mode is DeleteMode.soft:
        current = current.where(~F.coalesce(_c(dataset.cdc.deleted_column), F.lit(False)))
    when = snapshot.agg(F.max(EVENT_TIME)).first()[0]
    s, t = snapshot.alias("s"), current.select(*[_c(c.name) for c in dataset.columns]).alias("t")
    on = reduce(lambda a, b: a & b, [_c(k, "s") == _c(k, "t") for k in keys])
    joined = s.join(t, on, "full_outer")
    in_snapshot = _c(keys[0], "s").isNotNull()
    in_silver = _c(keys[0], "t").isNotNull()
    differs = reduce(
        lambda a, b: a | b, [~_c(v, "s").eqNullSafe(_c(v, "t")) for v in values], F.lit(False)
    )
    op = (
        F.when(in_snapshot & ~in_silver, F.lit(INSERT))
        .when(in_snapshot & in_silver & differs, F.lit(UPDATE))
        .when(~in_snapshot & in_silver, F.lit(DELETE))
    )
    return joined.select(
        *[F.coalesce(_c(k, "s"), _c(k, "t")).alias(k) for k in keys],
        *[_c(v, "s").alias(v) for v in values],
        _c("_source_file", "s").alias("_source_file"),
        F.coalesce(_c("_ingested_at", "s"), F.lit(when)).alias("_ingested_at"),
        op.alias(OP),
        F.lit(when).alias(EVENT_TIME),
    ).where(F.col(OP).isNotNull())


# --------------------------------------------------------------------------- batches


def process_batch(
    spark,
    env: Environment,
    dataset: Dataset,
    batch: DataFrame,
    batch_id: int,
    run_id: str,
    rules: RuleSet | None = None,
    quality_report: dict | None = None,
) -> dict[str, int]:
    """Check, quarantine and apply one bronze batch of changes (or snapshots); its counts.

    Reconciles: rows read = quarantined + applied + duplicates (changes superseded within
    the batch, or snapshot rows with an unchanged or repeated key). Nothing is cached: the
    counts come from the one checking pass and the MERGE's commit.
    """
    rules = rules or RuleSet.of(dataset)
    report = quality_report if quality_report is not None else {}
    batch_checked = _check(spark, env, dataset, batch, batch_id, run_id, rules, report)
    total, bad, good = batch_checked.read, batch_checked.quarantined, batch_checked.good
    measures = batch_checked.measures
    if total == 0:
        quality.record_metrics(spark, env, dataset, run_id, batch_id, measures)
        return Counts().as_dict()
    valid = total - bad
    applied = batch_checked.applied
    with quality.metrics_alongside(spark, env, dataset, run_id, batch_id, measures):
        if dataset.load.type is LoadType.snapshot:
            counts = _apply_snapshots(spark, env, dataset, good)
        elif dataset.scd.type == 2:
            events = good.withColumn(EVENT_TIME, _c(_sequence(dataset)[0]))
            counts = merge_scd2(spark, env, dataset, events)
        else:
            latest = latest_change_per_key(batch_checked.changes, dataset, skip=BAD)
            counts = merge_scd1(spark, env, dataset, latest, deletes=batch_checked.deletes > 0)
    result = Counts(
        read=total,
        quarantined=bad,
        duplicates=valid - applied,
        merged=applied,
        inserted=counts["inserted"],
        updated=counts["updated"],
        deleted=counts["deleted"],
    )
    if result.duplicates < 0:
        raise ReconciliationError(
            f"dataset '{dataset.id}' batch {batch_id}: {total} rows read but {applied} "
            f"applied and {bad} quarantined"
        )
    return result.as_dict()


def _apply_snapshots(spark, env: Environment, dataset: Dataset, good: DataFrame) -> dict[str, int]:
    """Each bronze run in the batch is one snapshot; apply them oldest first."""
    runs = (
        good.groupBy("_run_id")
        .agg(F.min("_ingested_at").alias("at"))
        .orderBy("at", "_run_id")
        .collect()
        if "_run_id" in good.columns
        else [None]
    )
    totals = {"inserted": 0, "updated": 0, "deleted": 0}
    for run in runs:
        rows = good if run is None else good.where(F.col("_run_id") == F.lit(run["_run_id"]))
        at = rows.agg(F.min("_ingested_at")).first()[0]
        order = [F.col("_ingested_at").desc(), F.col("_source_file").desc()]
        one = Window.partitionBy(*[_c(k) for k in _keys(dataset)]).orderBy(*order)
        rows = rows.withColumn("__rank", F.row_number().over(one)).where("__rank = 1")
        rows = rows.withColumn(EVENT_TIME, F.lit(at))
        changes = snapshot_changes(spark, env, dataset, rows).persist()
        try:
            if dataset.scd.type == 2:
                counts = merge_scd2(spark, env, dataset, changes)
            else:
                counts = merge_scd1(spark, env, dataset, changes)
        finally:
            changes.unpersist()
        for key in totals:
            totals[key] += counts[key]
    return totals
