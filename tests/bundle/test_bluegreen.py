"""Blue/green promote and rollback: the real databricks-sdk and the real CLI, against the stand-in.

Every scenario starts from an empty workspace. The deploy step is the real
`databricks bundle deploy --target prod_<color>`; schedules, runs, the journal and the lock are
read and written with databricks-sdk, exactly as in production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import ResourceAlreadyExists
from databricks.sdk.service.workspace import ImportFormat

from lakeline.deploy import bluegreen
from lakeline.deploy.bluegreen import (
    BlueGreenConfig,
    BlueGreenError,
    Journal,
    OperationInProgress,
    SmokeRunFailed,
    live_color,
    promote,
    rollback,
)
from lakeline.deploy.bundle_cli import BundleDeployer
from lakeline.deploy.cli import EXIT_LOCKED, main
from lakeline.testing.workspace_standin import WorkspaceStandIn

SERVICE_PRINCIPAL = "6d1c1a52-6f0e-4d2e-9a5b-2c4a1c0de001"
STATE_DIR = f"/Workspace/Users/{SERVICE_PRINCIPAL}/.bundle/lakeline/bluegreen"
MEDALLION = {c: f"[{c}] lakeline-medallion" for c in ("blue", "green")}
MAINTENANCE = {c: f"[{c}] lakeline-maintenance" for c in ("blue", "green")}


@dataclass
class Production:
    """A production workspace stand-in, the SDK client on it, and a real-CLI deployer."""

    standin: WorkspaceStandIn
    ws: WorkspaceClient
    config: BlueGreenConfig
    deploy: BundleDeployer
    deploys: list[str]

    def pause(self, job_name: str) -> str:
        return self.standin.job_named(job_name)["settings"]["schedule"]["pause_status"]

    def live_by_schedules(self) -> dict[str, str]:
        return {
            name: self.pause(name)
            for names in (MEDALLION, MAINTENANCE)
            for name in names.values()
            if any(j["settings"]["name"] == name for j in self.standin.jobs.values())
        }

    def promote(self, version: str, owner: str = "ci-run-1") -> bluegreen.Outcome:
        return promote(self.ws, self.config, self.recording_deploy, version=version, owner=owner)

    def recording_deploy(self, color: str) -> None:
        self.deploys.append(color)
        self.deploy(color)

    def runs_of(self, job_name: str) -> list[dict]:
        job_id = self.standin.job_named(job_name)["job_id"]
        return [r for r in self.standin.runs.values() if r["job_id"] == job_id]


@pytest.fixture
def production(copy_bundle, standin_factory, bundle_cli, sdk) -> Production:
    standin = standin_factory(SERVICE_PRINCIPAL)
    cli = bundle_cli(copy_bundle(), standin)
    ws = sdk(standin)
    config = BlueGreenConfig(
        state_dir=bluegreen.default_state_dir(ws),
        smoke_parameters={"catalog": "lakeline_smoke"},
    )
    deployer = BundleDeployer(config, cli.bundle_dir, cli=cli.cli, env=cli.env())
    return Production(standin, ws, config, deployer, [])


@pytest.fixture
def blue_live_v1(production) -> Production:
    outcome = production.promote("v1")
    assert outcome.action == "flipped" and outcome.live == "blue"
    production.deploys.clear()
    return production


# -- the lock primitive -------------------------------------------------------------------------


def test_import_without_overwrite_is_an_atomic_create(production):
    ws = production.ws
    ws.workspace.mkdirs(STATE_DIR)
    path = f"{STATE_DIR}/probe.lock"
    ws.workspace.import_(path, content="YQ==", format=ImportFormat.AUTO, overwrite=False)
    with pytest.raises(ResourceAlreadyExists):
        ws.workspace.import_(path, content="Yg==", format=ImportFormat.AUTO, overwrite=False)
    assert production.standin.object_at(path).content == b"a"


# -- promote ---------------------------------------------------------------------------------------


def test_first_promote_deploys_blue_smoke_tests_it_and_makes_it_live(production):
    outcome = production.promote("v1")

    assert outcome.action == "flipped" and outcome.live == "blue" and outcome.previous is None
    assert production.deploys == ["blue"]
    assert production.live_by_schedules() == {
        MEDALLION["blue"]: "UNPAUSED",
        MAINTENANCE["blue"]: "UNPAUSED",
    }
    (smoke,) = production.runs_of(MEDALLION["blue"])
    assert {"name": "catalog", "default": "lakeline_prod", "value": "lakeline_smoke"} in smoke[
        "job_parameters"
    ]
    journal = Journal.load(production.ws, production.config)
    assert (journal.live, journal.versions, journal.pending) == ("blue", {"blue": "v1"}, None)
    assert production.standin.object_at(production.config.lock_path) is None  # released
    assert production.standin.unhandled == []


def test_smoke_failure_leaves_the_live_color_alone(blue_live_v1):
    prod = blue_live_v1
    prod.standin.set_run_outcome(MEDALLION["green"], "FAILED", message="bronze: 3 bad rows")

    with pytest.raises(SmokeRunFailed, match=r"ended FAILED: bronze: 3 bad rows.*nothing was flip"):
        prod.promote("v2")

    assert prod.deploys == ["green"]
    assert prod.live_by_schedules() == {
        MEDALLION["blue"]: "UNPAUSED",
        MAINTENANCE["blue"]: "UNPAUSED",
        MEDALLION["green"]: "PAUSED",
        MAINTENANCE["green"]: "PAUSED",
    }
    assert live_color(prod.ws, prod.config) == "blue"
    journal = Journal.load(prod.ws, prod.config)
    assert journal.live == "blue" and journal.pending is None
    assert journal.history[-1]["event"] == "smoke-failed"
    assert prod.standin.object_at(prod.config.lock_path) is None


def test_smoke_success_flips_to_the_idle_color(blue_live_v1):
    prod = blue_live_v1
    prod.standin.set_run_outcome(MEDALLION["green"], "SUCCESS", polls=1)  # RUNNING, then done

    outcome = prod.promote("v2")

    assert (outcome.action, outcome.live, outcome.previous) == ("flipped", "green", "blue")
    assert prod.deploys == ["green"]
    assert prod.live_by_schedules() == {
        MEDALLION["blue"]: "PAUSED",
        MAINTENANCE["blue"]: "PAUSED",
        MEDALLION["green"]: "UNPAUSED",
        MAINTENANCE["green"]: "UNPAUSED",
    }
    # The old color was paused before the new one was unpaused: never two live schedules.
    updates = [
        (r.json["job_id"], r.json["new_settings"]["schedule"]["pause_status"])
        for r in prod.standin.requests_to("POST", "/api/2.2/jobs/update")
    ]
    first_unpause = next(i for i, (_, s) in enumerate(updates) if s == "UNPAUSED")
    assert all(s == "PAUSED" for _, s in updates[:first_unpause])
    assert len([s for _, s in updates if s == "PAUSED"]) == 2  # blue medallion + maintenance
    assert Journal.load(prod.ws, prod.config).versions == {"blue": "v1", "green": "v2"}


def test_promoting_the_live_version_again_does_nothing(blue_live_v1):
    prod = blue_live_v1
    runs_before = len(prod.standin.runs)

    outcome = prod.promote("v1")

    assert outcome.action == "already-live" and outcome.live == "blue"
    assert prod.deploys == [] and len(prod.standin.runs) == runs_before


def test_live_color_comes_from_the_workspace_schedules_not_the_journal(blue_live_v1):
    prod = blue_live_v1
    prod.ws.workspace.delete(prod.config.journal_path)  # even with the journal gone

    assert live_color(prod.ws, prod.config) == "blue"
    outcome = prod.promote("v2")
    assert outcome.live == "green" and outcome.previous == "blue"


# -- rollback ------------------------------------------------------------------------------------


def test_rollback_makes_the_previous_color_live(blue_live_v1):
    prod = blue_live_v1
    prod.promote("v2")
    assert live_color(prod.ws, prod.config) == "green"

    outcome = rollback(prod.ws, prod.config, owner="oncall")

    assert (outcome.live, outcome.previous, outcome.version) == ("blue", "green", "v1")
    assert prod.live_by_schedules() == {
        MEDALLION["blue"]: "UNPAUSED",
        MAINTENANCE["blue"]: "UNPAUSED",
        MEDALLION["green"]: "PAUSED",
        MAINTENANCE["green"]: "PAUSED",
    }
    assert prod.deploys == ["green"]  # the rollback itself deployed nothing
    assert Journal.load(prod.ws, prod.config).history[-1]["event"] == "rollback"


def test_rollback_without_a_previous_color_refuses(blue_live_v1):
    with pytest.raises(BlueGreenError, match="nothing to roll back to"):
        rollback(blue_live_v1.ws, blue_live_v1.config, owner="oncall")
    assert live_color(blue_live_v1.ws, blue_live_v1.config) == "blue"


# -- crashes -------------------------------------------------------------------------------------


def _fail_unpause(standin: WorkspaceStandIn) -> None:
    standin.inject_fault(
        "POST",
        "/api/2.2/jobs/update",
        message="connection reset while unpausing",
        when=lambda r: r.json["new_settings"]["schedule"]["pause_status"] == "UNPAUSED",
    )


def test_crash_between_pause_and_unpause_then_rerun_completes_the_flip(blue_live_v1):
    prod = blue_live_v1
    _fail_unpause(prod.standin)

    with pytest.raises(Exception, match="connection reset while unpausing"):
        prod.promote("v2")

    # Half-flipped: nothing is live, and the journal holds the intent.
    assert set(prod.live_by_schedules().values()) == {"PAUSED"}
    assert live_color(prod.ws, prod.config) is None
    pending = Journal.load(prod.ws, prod.config).pending
    assert (pending["operation"], pending["to"], pending["from"]) == ("promote", "green", "blue")
    runs_before = len(prod.standin.runs)

    outcome = prod.promote("v2")  # the CI job is rerun

    assert outcome.action == "completed-interrupted-flip" and outcome.live == "green"
    assert prod.deploys == ["green"] and len(prod.standin.runs) == runs_before  # no redo
    assert live_color(prod.ws, prod.config) == "green"
    journal = Journal.load(prod.ws, prod.config)
    assert journal.pending is None and journal.previous == "blue"


def test_crashed_process_keeps_the_lock_its_rerun_resumes_others_are_refused(
    blue_live_v1, monkeypatch
):
    prod = blue_live_v1
    _fail_unpause(prod.standin)
    # A killed process never releases its lock.
    monkeypatch.setattr(bluegreen.WorkspaceLock, "release", lambda self: None)
    with pytest.raises(Exception, match="connection reset"):
        prod.promote("v2", owner="ci-run-7")
    monkeypatch.undo()

    with pytest.raises(
        OperationInProgress, match=r"promote v2 by ci-run-7 since .*--owner ci-run-7"
    ):
        prod.promote("v3", owner="ci-run-8")
    with pytest.raises(OperationInProgress):
        rollback(prod.ws, prod.config, owner="oncall")

    outcome = prod.promote("v2", owner="ci-run-7")
    assert outcome.action == "completed-interrupted-flip" and outcome.live == "green"
    assert prod.standin.object_at(prod.config.lock_path) is None


def test_crash_during_rollback_then_rerun_completes_it(blue_live_v1):
    prod = blue_live_v1
    prod.promote("v2")
    _fail_unpause(prod.standin)
    with pytest.raises(Exception, match="connection reset"):
        rollback(prod.ws, prod.config, owner="oncall")
    assert live_color(prod.ws, prod.config) is None

    outcome = rollback(prod.ws, prod.config, owner="oncall")

    assert outcome.action == "completed-interrupted-flip" and outcome.live == "blue"
    assert live_color(prod.ws, prod.config) == "blue"


# -- concurrency ---------------------------------------------------------------------------------


def test_two_concurrent_promotes_exactly_one_wins(blue_live_v1):
    prod = blue_live_v1
    start = threading.Barrier(2)
    loser_done = threading.Event()
    results: dict[str, object] = {}

    def deploy_after_the_other_gave_up(color: str) -> None:
        loser_done.wait(timeout=30)  # hold the lock until the other promote has tried
        prod.recording_deploy(color)

    def attempt(owner: str, version: str) -> None:
        start.wait()
        try:
            results[owner] = promote(
                prod.ws, prod.config, deploy_after_the_other_gave_up, version=version, owner=owner
            )
        except OperationInProgress as exc:
            results[owner] = exc
            loser_done.set()

    threads = [threading.Thread(target=attempt, args=(f"ci-run-{v}", v)) for v in ("v2", "v3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = {o: r for o, r in results.items() if isinstance(r, bluegreen.Outcome)}
    losers = {o: r for o, r in results.items() if isinstance(r, OperationInProgress)}
    assert len(winners) == 1 and len(losers) == 1, results
    (winner,) = winners
    (message,) = (str(e) for e in losers.values())
    assert f"by {winner}" in message and "Nothing was changed" in message
    assert prod.deploys == ["green"]  # only the winner deployed
    assert live_color(prod.ws, prod.config) == "green"


# -- the command line ----------------------------------------------------------------------------


def test_command_line_promote_status_rollback_and_lock_refusal(production, capsys, monkeypatch):
    prod = production
    owner = ["--owner", "ci-run-1"]
    cli = ["--databricks-cli", str(prod.deploy.cli), "--bundle-dir", str(prod.deploy.bundle_dir)]
    for name, value in prod.deploy.env.items():  # the command's deployer uses the process env
        monkeypatch.setenv(name, value)

    smoke = ["--smoke-param", "catalog=lakeline_smoke"]
    assert main(["promote", "--version", "v1", *owner, *cli, *smoke], ws=prod.ws) == 0
    assert "blue is live now" in capsys.readouterr().out

    assert main(["status"], ws=prod.ws) == 0
    assert "live: blue" in capsys.readouterr().out

    prod.ws.workspace.import_(
        prod.config.lock_path,
        content="eyJvd25lciI6ICJzb21lb25lLWVsc2UifQ==",  # {"owner": "someone-else"}
        format=ImportFormat.AUTO,
        overwrite=False,
    )
    assert main(["rollback", *owner], ws=prod.ws) == EXIT_LOCKED
    assert "another blue/green operation is in progress" in capsys.readouterr().err
    assert main(["unlock", "--force"], ws=prod.ws) == 0
    assert main(["rollback", *owner], ws=prod.ws) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
