"""The steps the notebooks run: sync, plan, ingest (bronze), transform (silver or gold).

Each step reads what it needs from the control table, does its work, appends its outcome
to the run log and returns a small result the notebook exits with.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lakeline import bronze, control, gold, locks, quality, silver, state, streams
from lakeline.environment import Environment
from lakeline.errors import LakelineError
from lakeline.runlog import StepResult, ensure_run_log_table, logged_step
from lakeline.session import is_connect


@dataclass(frozen=True)
class Request:
    """What a notebook was asked to do, from its widgets."""

    catalog: str
    landing_root: str
    checkpoint_root: str
    run_id: str
    metadata_dir: str = ""
    dataset: str = ""
    layer: str = ""

    def environment(self, spark) -> Environment:
        from lakeline.session import is_unity_catalog

        return Environment(
            catalog=self.catalog,
            landing_root=self.landing_root,
            checkpoint_root=self.checkpoint_root,
            unity_catalog=is_unity_catalog(spark),
        )


def run_sync(spark, request: Request) -> StepResult:
    env = request.environment(spark)
    env.ensure_schemas(spark)
    ensure_run_log_table(spark, env)
    state.ensure_state_table(spark, env)
    quality.ensure_metrics_table(spark, env)
    locks.ensure_lock_table(spark, env)
    if is_connect(spark):  # before the for-each tasks that would all create it at once
        streams.ensure_batch_results_table(spark, env)
    with logged_step(spark, env, request.run_id, "*", "sync") as result:
        synced = control.sync(spark, env, Path(request.metadata_dir), request.run_id)
        result.rows_written = synced.inserted + synced.updated + synced.deleted
        result.details.update(
            inserted=synced.inserted,
            updated=synced.updated,
            deleted=synced.deleted,
            unchanged=synced.unchanged,
            control_version=synced.table_version,
        )
    return result


def run_plan(spark, request: Request) -> list[str]:
    """Dataset ids to run, for the for-each tasks."""
    plan = control.load_plan(spark, request.environment(spark))
    return sorted(plan.datasets)


@contextmanager
def _dataset_step(spark, request: Request, layer: str, step: str):
    """The dataset's definition, its run-log entry and its lock, for one step of one dataset.

    The lock's two small Delta writes overlap work they do not depend on: it is taken while
    the control table is read, and given back while the run log is appended to. Nothing is
    written before it is held. Yields the environment, the dataset and the step's result.
    """
    env = request.environment(spark)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakeline-lock") as pool:
        taking = pool.submit(locks.acquire, spark, env, request.dataset, layer, request.run_id)
        try:
            dataset = control.dataset_from_control(spark, env, request.dataset)
        except BaseException:
            if taking.exception() is None:
                taking.result().release(spark, env)
            raise
        giving_back: Future | None = None
        try:
            with logged_step(spark, env, request.run_id, dataset.id, step) as result:
                held = taking.result()  # another run holding it fails the step, logged
                try:
                    yield env, dataset, result
                finally:
                    giving_back = pool.submit(held.release, spark, env)
        except BaseException:
            if giving_back is not None:
                giving_back.exception()  # waited for; the step's own error is the one raised
            raise
        if giving_back is not None:
            giving_back.result()


def run_ingest(spark, request: Request) -> StepResult:
    with _dataset_step(spark, request, "bronze", "bronze") as (env, dataset, result):
        bronze.ingest(spark, env, dataset, request.run_id, result)
    return result


def run_transform(spark, request: Request) -> StepResult:
    if request.layer == "silver":
        with _dataset_step(spark, request, "silver", "silver") as (env, dataset, result):
            silver.transform(spark, env, dataset, request.run_id, result)
        return result
    if request.layer == "gold":
        env = request.environment(spark)
        plan = control.load_plan(spark, env)
        with logged_step(spark, env, request.run_id, "*", "gold") as result:
            for table in plan.gold:
                gold.build(spark, env, table, result)
        return result
    raise LakelineError(f"layer must be 'silver' or 'gold', not {request.layer!r}")


def run_backfill(
    spark,
    request: Request,
    *,
    since: str | None = None,
    until: str | None = None,
    runs: list[str] | None = None,
    with_gold: bool = True,
) -> StepResult:
    """Rebuild one dataset's silver from bronze (all, or a range), then gold; see backfill.py."""
    from datetime import datetime

    from lakeline import backfill

    with _dataset_step(spark, request, "silver", "backfill") as (env, dataset, result):
        backfill.rebuild_silver(
            spark,
            env,
            dataset,
            request.run_id,
            result,
            since=datetime.fromisoformat(since) if since else None,
            until=datetime.fromisoformat(until) if until else None,
            runs=runs,
        )
        if with_gold:
            backfill.rebuild_gold(spark, env, result)
    return result


def run_maintenance(spark, request: Request, operation: str, retention_hours: int) -> StepResult:
    from lakeline import maintenance

    env = request.environment(spark)
    with logged_step(spark, env, request.run_id, "*", operation) as result:
        done = maintenance.run(spark, env, operation, retention_hours)
        result.details["tables"] = done.tables
        result.rows_written = len(done.tables)
    return result


def exit_value(result: StepResult | list) -> str:
    return result.to_json() if isinstance(result, StepResult) else json.dumps(result)
