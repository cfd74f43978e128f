"""Replay: move quarantined rows that now pass their rules into silver, exactly once.

Once the cause of a quarantine is fixed (a rule relaxed in the contract, a type widened,
a reference data set loaded), ``lakeline quarantine-replay <dataset>`` re-evaluates the
dataset's quarantined rows with its current rules. It works in three recorded steps, so a
replay that stops half way is finished by the next one and never applies a row twice:

1. **claim**: one MERGE on the quarantine table stamps the rows that now pass with this
   replay's id (``replay_run_id``); rows still failing are left as they are;
2. **apply**: the claimed rows, deduplicated by key, are MERGEd into silver like any
   batch (a row older than silver's version of its key does not replace it); the silver
   commit carries the replay id in its commit metadata;
3. **finish**: one UPDATE sets ``replayed_at`` on the claimed rows.

A change feed (load type ``cdc``, SCD1 or SCD2) is re-checked and applied by ``cdc.py``
exactly as a bronze batch is: a replayed delete deletes (hard or soft), SCD2 history is
split where the replayed change falls, a change no later than a key's tombstone is
stale, and a claimed row that fails again is quarantined anew (its old row is finished).
An SCD1 apply MERGEs silver, then records the deletes' tombstones; if it stopped in
between, the next replay finds the replay id in silver and records the missing tombstones.
Quarantined rows of a snapshot load are not replayed: a snapshot is every row at one
moment, and a part of it would delete the rest.

A replay first finishes any claim left unfinished (apply it unless silver's history has
its id, then finish). A row with ``replayed_at`` set is never looked at again;
quarantined rows are kept, marked, for audit.

Do not run a replay of a dataset while its silver step runs: both write the quarantine
table, and Delta rejects the second writer (re-run the replay; it recovers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeline import cdc, merges, quality, silver
from lakeline.bronze import bronze_table
from lakeline.environment import Environment
from lakeline.errors import DataError, ReconciliationError
from lakeline.metadata import Dataset, LoadType
from lakeline.quality import FAILED_RULES, QUARANTINED, RAW, REASONS, RuleSet
from lakeline.runlog import StepResult

MARKER = "lakeline"
_ID = "_quarantine_id"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass
class ReplayCounts:
    """What one replay did; ``pending`` = ``replayed`` + ``still_quarantined``."""

    pending: int = 0
    replayed: int = 0
    still_quarantined: int = 0
    recovered: int = 0
    merged: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    stale: int = 0
    requarantined: int = 0


def _rows_as_bronze(spark, env: Environment, dataset: Dataset, quarantined: DataFrame):
    """Quarantined rows turned back into bronze-shaped rows (the raw record, its lineage)."""
    if not env.exists(spark, "bronze", dataset.id):
        raise DataError(f"dataset '{dataset.id}': no bronze table, so no record schema to replay")
    bronze = spark.table(bronze_table(env, dataset)).schema
    record = F.from_json(
        F.col("record"),
        T.StructType([f for f in bronze.fields if not f.name.startswith("_")]),
    )
    return quarantined.select(
        record.alias("__record"),
        F.col("run_id").alias("_run_id"),
        F.col("source_file").alias("_source_file"),
        F.col("ingested_at").alias("_ingested_at"),
        F.col("quarantine_id").alias(_ID),
    ).select("__record.*", "_run_id", "_source_file", "_ingested_at", _ID)


def _has_marker(spark, table: str, token: str) -> bool:
    """Whether one of the table's last 20 commits carries the replay id ``token``."""
    rows = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 20").select("userMetadata").collect()
    for (meta,) in rows:
        try:
            parsed = json.loads(meta) if meta else {}
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get(MARKER, {}).get("replay") == token:
            return True
    return False


def _silver_has(spark, env: Environment, dataset: Dataset, token: str) -> bool:
    return _has_marker(spark, silver.silver_table(env, dataset), token)


def _batch_id(token: str) -> int:
    """A batch id for the change-feed apply of ``token``: negative, so never a stream's,
    and the same on every attempt, so its quarantine write happens once."""
    return -int(hashlib.sha256(token.encode()).hexdigest()[:12], 16)


class _Marked:
    """Every commit made inside carries the replay id in its commit metadata."""

    def __init__(self, spark, token: str) -> None:
        self.spark, self.token = spark, token

    def __enter__(self) -> None:
        self.previous = self.spark.conf.get(_USER_METADATA, None)
        self.spark.conf.set(_USER_METADATA, json.dumps({MARKER: {"replay": self.token}}))

    def __exit__(self, *exc) -> None:
        if self.previous is None:
            self.spark.conf.unset(_USER_METADATA)
        else:
            self.spark.conf.set(_USER_METADATA, self.previous)


def _apply(spark, env: Environment, dataset: Dataset, rules: RuleSet, token: str, counts) -> None:
    """Merge the rows claimed by ``token`` into silver, unless that already happened."""
    claimed = spark.table(silver.quarantine_table(env, dataset)).where(
        (F.col("replay_run_id") == F.lit(token)) & F.col("replayed_at").isNull()
    )
    if _silver_has(spark, env, dataset, token):
        if cdc.handles(dataset) and cdc.keeps_tombstones(dataset):
            _record_tombstones(spark, env, dataset, rules, token, claimed)
        return
    rows = _rows_as_bronze(spark, env, dataset, claimed)
    if rows.isEmpty():
        return
    # The claimed rows go through the same batch step as bronze rows: a row that fails
    # again (the rules changed between the claim and this apply) is quarantined anew,
    # never dropped.
    apply = cdc.process_batch if cdc.handles(dataset) else silver.process_batch
    with _Marked(spark, token):
        applied = apply(spark, env, dataset, rows, _batch_id(token), token, rules)
    counts.merged += applied["merged"]
    counts.duplicates += applied["duplicates"]
    counts.inserted += applied["inserted"]
    counts.updated += applied["updated"]
    counts.deleted += applied.get("deleted", 0)
    counts.stale += applied.get("stale", 0)
    counts.requarantined += applied["quarantined"]


def _record_tombstones(
    spark, env: Environment, dataset: Dataset, rules: RuleSet, token: str, claimed: DataFrame
) -> None:
    """The tombstones of claimed deletes silver has applied, if a stop between the silver
    MERGE and the tombstone MERGE left them out (already recorded ones write nothing)."""
    checked, _ = cdc.classify(dataset, _rows_as_bronze(spark, env, dataset, claimed), rules)
    good = checked.where(~F.col(cdc.BAD)).drop(RAW, REASONS, FAILED_RULES, cdc.BAD)
    latest = cdc.latest_change_per_key(good, dataset)
    missing = cdc.untombstoned_deletes(spark, env, dataset, latest)
    if not missing.isEmpty():
        with _Marked(spark, token):
            cdc._record_tombstones(spark, env, dataset, missing)


def _checked(spark, env: Environment, dataset: Dataset, rules: RuleSet, pending: DataFrame):
    """Pending quarantined rows re-checked with the current rules: the checked frame
    (persisted: unpersist it), its measures, the count still failing, the passing ids."""
    rows = _rows_as_bronze(spark, env, dataset, pending)
    if not cdc.handles(dataset):
        checked = rules.evaluate(rows).persist()
        measures = rules.measure(spark, env, checked)
        return checked, measures, measures.total, measures.quarantined, ~F.col(QUARANTINED)
    checked, upserts = cdc.classify(dataset, rows, rules)
    checked = checked.persist()
    measures = rules.measure(spark, env, upserts)
    total, bad = checked.agg(F.count(F.lit(1)), F.count(F.when(F.col(cdc.BAD), 1))).first()
    return checked, measures, total, bad, ~F.col(cdc.BAD)


def _finish(spark, env: Environment, dataset: Dataset, token: str) -> int:
    name = silver.quarantine_table(env, dataset)
    claimed = (F.col("replay_run_id") == F.lit(token)) & F.col("replayed_at").isNull()
    count = int(spark.table(name).where(claimed).count())  # numpy.int64 over Connect
    if count:
        merges.update(
            spark,
            name,
            "replayed_at = current_timestamp()",
            "replay_run_id = :token AND replayed_at IS NULL",
            args={"token": token},
        )
    return count


def replay(
    spark, env: Environment, dataset: Dataset, run_id: str, result: StepResult | None = None
) -> ReplayCounts:
    """Re-evaluate the dataset's quarantined rows and move those that now pass into silver.

    Raises QualityError (nothing claimed, nothing written) if a ``fail`` rule fails on the
    quarantined rows, and ReconciliationError if the rows do not add up.
    """
    if dataset.load.type is LoadType.snapshot:
        raise DataError(
            f"dataset '{dataset.id}': quarantined rows of a snapshot load are not replayed: "
            "a snapshot is every row at one moment, and replaying a part of it would delete "
            "the rest. Fix the cause and load a new snapshot (the quarantined rows stay, for "
            "audit)."
        )
    result = result or StepResult(dataset.id, "replay")
    rules = RuleSet.of(dataset)
    silver.ensure_tables(spark, env, dataset)
    silver.check_schema(spark, env, dataset, result)
    counts = ReplayCounts()
    name = silver.quarantine_table(env, dataset)

    # 0. finish what an interrupted replay claimed
    unfinished = (
        spark.table(name)
        .where(F.col("replay_run_id").isNotNull() & F.col("replayed_at").isNull())
        .select("replay_run_id")
        .distinct()
        .collect()
    )
    for (token,) in unfinished:
        _apply(spark, env, dataset, rules, token, counts)
        counts.recovered += _finish(spark, env, dataset, token)

    # 1. evaluate what is still quarantined
    pending = spark.table(name).where(
        F.col("replay_run_id").isNull() & F.col("replayed_at").isNull()
    )
    checked, measures, counts.pending, counts.still_quarantined, passes = _checked(
        spark, env, dataset, rules, pending
    )
    try:
        if counts.pending == 0:
            result.details.update(asdict(counts))
            return counts
        quality.record_metrics(spark, env, dataset, run_id, None, measures)
        result.details["failed_rules"] = measures.failed_rule_counts()
        measures.raise_on_fail(dataset.id, " (replay of quarantined rows)")
        passing = (
            checked.where(passes).select(F.col(RAW).getField(_ID).alias("quarantine_id")).distinct()
        )
        if counts.pending == counts.still_quarantined:  # nothing passes: write nothing
            result.details.update(asdict(counts))
            return counts
        # 2. claim
        merges.merge(
            name,
            passing,
            "t.quarantine_id = s.quarantine_id AND t.replay_run_id IS NULL "
            "AND t.replayed_at IS NULL",
            ["WHEN MATCHED THEN UPDATE SET replay_run_id = :run_id"],
            args={"run_id": run_id},
        )
    finally:
        checked.unpersist()
    # 3. apply, 4. finish
    _apply(spark, env, dataset, rules, run_id, counts)
    counts.replayed = _finish(spark, env, dataset, run_id)
    result.rows_read = counts.pending
    result.rows_written = counts.inserted + counts.updated
    result.details.update(asdict(counts))
    if counts.pending != counts.replayed + counts.still_quarantined:
        raise ReconciliationError(
            f"dataset '{dataset.id}': replay of {counts.pending} quarantined rows moved "
            f"{counts.replayed} and kept {counts.still_quarantined}"
        )
    return counts


def replay_token() -> str:
    return "replay-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
