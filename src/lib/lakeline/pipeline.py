"""The steps the notebooks run: sync, plan, ingest (bronze), transform (silver or gold).

Each step reads what it needs from the control table, does its work, appends its outcome
to the run log and returns a small result the notebook exits with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lakeline import bronze, control, gold, locks, quality, silver, state
from lakeline.environment import Environment
from lakeline.errors import LakelineError
from lakeline.runlog import StepResult, ensure_run_log_table, logged_step


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


def run_ingest(spark, request: Request) -> StepResult:
    env = request.environment(spark)
    dataset = control.dataset_from_control(spark, env, request.dataset)
    with (
        logged_step(spark, env, request.run_id, dataset.id, "bronze") as result,
        locks.hold(spark, env, dataset.id, "bronze", request.run_id),
    ):
        bronze.ingest(spark, env, dataset, request.run_id, result)
    return result


def run_transform(spark, request: Request) -> StepResult:
    env = request.environment(spark)
    if request.layer == "silver":
        dataset = control.dataset_from_control(spark, env, request.dataset)
        with (
            logged_step(spark, env, request.run_id, dataset.id, "silver") as result,
            locks.hold(spark, env, dataset.id, "silver", request.run_id),
        ):
            silver.transform(spark, env, dataset, request.run_id, result)
        return result
    if request.layer == "gold":
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

    env = request.environment(spark)
    dataset = control.dataset_from_control(spark, env, request.dataset)
    with (
        logged_step(spark, env, request.run_id, dataset.id, "backfill") as result,
        locks.hold(spark, env, dataset.id, "silver", request.run_id),
    ):
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
