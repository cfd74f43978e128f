"""Two runs of one dataset at once: one gets the lock, the other fails clearly, untouched."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from lakeline import control, locks, runlog, state, streams
from lakeline.errors import LakelineError
from lakeline.pipeline import Request, run_sync, run_transform

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cdc"


def test_racing_runs_get_the_lock_exactly_once(spark, env):
    got: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def take(run_id: str) -> None:
        barrier.wait()
        got[run_id] = locks.try_acquire(spark, env, "customers/silver", run_id)

    threads = [threading.Thread(target=take, args=(f"run{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [run for run, held in got.items() if held is None]
    assert len(winners) == 1
    loser = next(run for run in got if run not in winners)
    assert got[loser].run_id == winners[0]


def test_a_lock_of_a_dead_process_is_taken_over(spark, env):
    locks.ensure_lock_table(spark, env)
    import socket
    from datetime import datetime

    spark.createDataFrame(
        [("customers/silver", "killed", socket.gethostname(), 2**22 + 12345, datetime.now())],
        locks._SCHEMA,
    ).write.format("delta").mode("append").saveAsTable(env.table("ops", locks.LOCK_TABLE))
    assert locks.try_acquire(spark, env, "customers/silver", "rerun") is None


def test_second_run_fails_with_a_clear_message_and_writes_nothing(spark, env, tmp_path):
    folder = tmp_path / "metadata" / "datasets"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "customers.yml", folder / "customers_cdc.yml")

    def request(run_id: str) -> Request:
        return Request(
            catalog=env.catalog,
            landing_root=env.landing_root,
            checkpoint_root=env.checkpoint_root,
            run_id=run_id,
            metadata_dir=str(folder.parent),
            dataset="customers_cdc",
            layer="silver",
        )

    run_sync(spark, request("first"))
    with locks.hold(spark, env, "customers_cdc", "silver", "first"):
        with pytest.raises(locks.ConcurrentRunError, match="run first .* is already working"):
            run_transform(spark, request("second"))
        assert not env.exists(spark, "silver", "customers_cdc")
    run_transform(spark, request("second"))  # once released, the next run goes ahead
    assert env.exists(spark, "silver", "customers_cdc")
    assert spark.table(env.table("ops", locks.LOCK_TABLE)).count() == 0  # released


@pytest.mark.parametrize(
    "ensure",
    [
        locks.ensure_lock_table,
        state.ensure_state_table,
        runlog.ensure_run_log_table,
        control.ensure_control_table,
        streams.ensure_batch_results_table,
    ],
    ids=lambda f: f.__module__.rsplit(".", 1)[-1],
)
def test_tasks_creating_one_ops_table_at_once_all_get_it(spark, env, ensure):
    """Parallel for-each tasks create the same ops table: a bare CREATE TABLE IF NOT EXISTS
    fails in all but one of them (DELTA_PROTOCOL_CHANGED); env.create waits for the winner."""
    errors: list[BaseException] = []
    names: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        try:
            names.append(ensure(spark, env))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(names)) == 1
    assert spark.sql(f"DESCRIBE HISTORY {names[0]}").count() == 1  # created once


def _lock_rows(spark, env) -> list[tuple[str, str]]:
    rows = spark.table(env.table("ops", locks.LOCK_TABLE)).select("name", "run_id").collect()
    return sorted((r.name, r.run_id) for r in rows)


def test_giving_a_lock_back_removes_only_what_is_ours(spark, env):
    held = locks.acquire(spark, env, "orders", "bronze", "mine")
    assert _lock_rows(spark, env) == [("orders/bronze", "mine")]
    held.release(spark, env)  # held briefly: its partition is dropped
    assert _lock_rows(spark, env) == []
    # A lock another run holds now (as after a takeover of ours): released for an unknown
    # or a long time, only our own row could go, so theirs stays.
    locks.acquire(spark, env, "orders", "silver", "other")
    locks.release(spark, env, "orders/silver", "mine")
    locks.release(spark, env, "orders/silver", "mine", held_for=locks.STALE_AFTER)
    assert _lock_rows(spark, env) == [("orders/silver", "other")]


def test_a_step_of_an_unknown_dataset_gives_the_lock_back(spark, env, tmp_path):
    folder = tmp_path / "metadata" / "datasets"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "customers.yml", folder / "customers_cdc.yml")
    request = Request(
        catalog=env.catalog,
        landing_root=env.landing_root,
        checkpoint_root=env.checkpoint_root,
        run_id="typo",
        metadata_dir=str(folder.parent),
        dataset="customers_cbc",
        layer="silver",
    )
    run_sync(spark, request)
    # The lock is taken while the control table is read; the read fails, the lock is freed.
    with pytest.raises(LakelineError, match="'customers_cbc' is not an enabled dataset"):
        run_transform(spark, request)
    assert _lock_rows(spark, env) == []
