"""Blue/green promotion and rollback of the production bundle targets.

Production runs from two copies of every job, ``prod_blue`` and ``prod_green`` (two bundle
targets with their own ``root_path``). Exactly one color is *live*: its scheduled jobs are
UNPAUSED, the other color's are PAUSED. The workspace itself is the source of truth:

* the schedules' pause status (read with the Jobs API) says which color is live;
* a small JSON journal in the workspace (``<state_dir>/bluegreen.json``) remembers which
  version each color holds, which color was live before, and the intent of a flip in progress;
* a lock file (``<state_dir>/bluegreen.lock``), created with "import, do not overwrite" — a
  create-if-absent that the workspace answers with ``RESOURCE_ALREADY_EXISTS`` when another
  operation holds it — makes operations mutually exclusive.

:func:`promote` deploys the idle color with its schedules paused, runs that color's smoke job,
and flips only if the run succeeded. :func:`rollback` flips back to the previous color. A flip
writes its intent to the journal first, pauses the old color, unpauses the new one, then clears
the intent; every step sets an absolute state, so rerunning after a crash (same ``owner``)
finishes the flip instead of starting over.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, ResourceAlreadyExists, ResourceDoesNotExist
from databricks.sdk.service.jobs import (
    BaseJob,
    CronSchedule,
    JobSettings,
    PauseStatus,
    RunResultState,
)
from databricks.sdk.service.workspace import ExportFormat, ImportFormat

from lakeline.errors import LakelineError

log = logging.getLogger(__name__)

Color = Literal["blue", "green"]
COLORS: tuple[Color, Color] = ("blue", "green")
JOURNAL_FILE = "bluegreen.json"
LOCK_FILE = "bluegreen.lock"
HISTORY_LENGTH = 20

#: Deploys one color's bundle target with its schedules paused (see ``bundle_cli``).
Deployer = Callable[[Color], None]


class BlueGreenError(LakelineError):
    """A blue/green operation could not be carried out; the message says what to do."""


class OperationInProgress(BlueGreenError):
    """Another promote or rollback holds the workspace lock."""


class SmokeRunFailed(BlueGreenError):
    """The idle color's smoke run did not succeed; nothing was flipped."""


def other(color: Color) -> Color:
    return "green" if color == "blue" else "blue"


@dataclass(frozen=True)
class BlueGreenConfig:
    """Where the blue/green state lives and how the colors' jobs are recognised.

    Jobs belong to a color by their tags (``project`` and ``color``, set by the bundle's
    presets); the smoke job is the color's job whose ``component`` tag is ``smoke_component``.
    """

    state_dir: str
    project: str = "lakeline"
    smoke_component: str = "medallion"
    smoke_parameters: dict[str, str] = field(default_factory=dict)
    smoke_timeout: timedelta = timedelta(hours=2)
    target_prefix: str = "prod_"

    def target(self, color: Color) -> str:
        """The bundle target of ``color``, e.g. ``prod_green``."""
        return f"{self.target_prefix}{color}"

    @property
    def journal_path(self) -> str:
        return f"{self.state_dir.rstrip('/')}/{JOURNAL_FILE}"

    @property
    def lock_path(self) -> str:
        return f"{self.state_dir.rstrip('/')}/{LOCK_FILE}"


def default_state_dir(ws: WorkspaceClient, project: str = "lakeline") -> str:
    """``/Workspace/Users/<deploying identity>/.bundle/<project>/bluegreen``.

    In CI the deploying identity is the service principal the production targets run as, so
    this sits next to the targets' own ``root_path`` folders.
    """
    me = ws.current_user.me().user_name
    return f"/Workspace/Users/{me}/.bundle/{project}/bluegreen"


# -- the journal and the lock, both workspace files --------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_json(ws: WorkspaceClient, path: str) -> dict[str, Any] | None:
    try:
        with ws.workspace.download(path, format=ExportFormat.AUTO) as stream:
            raw = stream.read()
    except (NotFound, ResourceDoesNotExist):
        return None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BlueGreenError(
            f"{path} in the workspace is not valid JSON ({exc}); fix or delete it"
        ) from exc


def _write_json(ws: WorkspaceClient, path: str, data: dict[str, Any], *, overwrite: bool) -> None:
    content = base64.b64encode(json.dumps(data, indent=2, sort_keys=True).encode()).decode()
    ws.workspace.import_(path, content=content, format=ImportFormat.AUTO, overwrite=overwrite)


@dataclass
class Journal:
    """What the workspace remembers between operations (``bluegreen.json``)."""

    live: Color | None = None
    previous: Color | None = None
    versions: dict[str, str] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, ws: WorkspaceClient, config: BlueGreenConfig) -> Journal:
        data = _read_json(ws, config.journal_path) or {}
        return cls(
            live=data.get("live"),
            previous=data.get("previous"),
            versions=dict(data.get("versions") or {}),
            pending=data.get("pending"),
            history=list(data.get("history") or []),
        )

    def save(self, ws: WorkspaceClient, config: BlueGreenConfig) -> None:
        self.history = self.history[-HISTORY_LENGTH:]
        _write_json(ws, config.journal_path, self.__dict__, overwrite=True)

    def record(self, event: str, **details: Any) -> None:
        self.history.append({"at": _now(), "event": event, **details})


@dataclass
class WorkspaceLock:
    """Exclusive lock on blue/green operations, held as a workspace file.

    Acquiring creates the file without overwrite: of two concurrent callers exactly one gets
    it. The holder's ``owner`` is written inside; acquiring again with the same owner (a rerun
    after a crash) succeeds, any other owner gets :class:`OperationInProgress`.
    """

    ws: WorkspaceClient
    config: BlueGreenConfig
    owner: str
    operation: str

    def acquire(self) -> None:
        self.ws.workspace.mkdirs(self.config.state_dir)
        mine = {"owner": self.owner, "operation": self.operation, "acquired_at": _now()}
        try:
            _write_json(self.ws, self.config.lock_path, mine, overwrite=False)
            return
        except ResourceAlreadyExists:
            pass
        held = _read_json(self.ws, self.config.lock_path) or {}
        if held.get("owner") == self.owner:
            log.info("resuming: the lock is already held by this owner (%s)", self.owner)
            return
        raise OperationInProgress(
            f"another blue/green operation is in progress: {held.get('operation', '?')} by "
            f"{held.get('owner', '?')} since {held.get('acquired_at', '?')} "
            f"(lock {self.config.lock_path}). Nothing was changed. Wait for it to finish; if it "
            f"crashed, rerun it with --owner {held.get('owner', '?')} to complete it, or remove "
            "the lock with `unlock --force` once you are sure it is gone."
        )

    def release(self) -> None:
        held = _read_json(self.ws, self.config.lock_path)
        if held is not None and held.get("owner") == self.owner:
            self.ws.workspace.delete(self.config.lock_path)

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        # Released on success and on handled failures alike. A process that dies here keeps
        # the lock, which is what makes the rerun with the same owner a resume.
        self.release()


def force_unlock(ws: WorkspaceClient, config: BlueGreenConfig) -> dict[str, Any] | None:
    """Delete the lock whoever holds it; returns what it held (``None`` if there was none)."""
    held = _read_json(ws, config.lock_path)
    if held is not None:
        ws.workspace.delete(config.lock_path)
    return held


# -- jobs of a color ------------------------------------------------------------------------------


def color_jobs(ws: WorkspaceClient, config: BlueGreenConfig, color: Color) -> list[BaseJob]:
    """The deployed jobs of ``color``: tagged ``project=<project>`` and ``color=<color>``."""
    found = []
    for job in ws.jobs.list():
        tags = (job.settings.tags if job.settings else None) or {}
        if tags.get("project") == config.project and tags.get("color") == color:
            found.append(job)
    return found


def _scheduled(jobs: Iterable[BaseJob]) -> list[BaseJob]:
    return [j for j in jobs if j.settings and j.settings.schedule]


def schedule_states(ws: WorkspaceClient, config: BlueGreenConfig) -> dict[Color, list[str]]:
    """Pause status of every scheduled job, per color (``[]`` for a color with no jobs)."""
    states: dict[Color, list[str]] = {}
    for color in COLORS:
        states[color] = [
            (j.settings.schedule.pause_status or PauseStatus.UNPAUSED).value
            for j in _scheduled(color_jobs(ws, config, color))
        ]
    return states


def live_color(ws: WorkspaceClient, config: BlueGreenConfig) -> Color | None:
    """The color whose schedules are unpaused, read from the workspace's jobs.

    ``None`` when no color is live (nothing promoted yet, or a flip was interrupted between
    pausing the old color and unpausing the new one: see the journal's ``pending``).
    """
    states = schedule_states(ws, config)
    live = [c for c in COLORS if "UNPAUSED" in states[c]]
    if len(live) > 1:
        raise BlueGreenError(
            "both colors have unpaused schedules; pause the one that should not run "
            "(or rerun the interrupted promote/rollback) before promoting again"
        )
    return live[0] if live else None


def _set_pause(ws: WorkspaceClient, jobs: Iterable[BaseJob], status: PauseStatus) -> None:
    for job in _scheduled(jobs):
        schedule = job.settings.schedule
        if schedule.pause_status == status:
            continue
        log.info("job %s (%s): schedule -> %s", job.job_id, job.settings.name, status.value)
        ws.jobs.update(
            job.job_id,
            new_settings=JobSettings(
                schedule=CronSchedule(
                    quartz_cron_expression=schedule.quartz_cron_expression,
                    timezone_id=schedule.timezone_id,
                    pause_status=status,
                )
            ),
        )


# -- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What an operation did, for the command line and the tests."""

    action: Literal["flipped", "already-live", "completed-interrupted-flip"]
    live: Color
    previous: Color | None
    version: str | None = None
    smoke_run_id: int | None = None

    def describe(self) -> str:
        text = {
            "flipped": f"{self.live} is live now (was {self.previous or 'nothing'})",
            "already-live": f"{self.live} is already live with this version; nothing to do",
            "completed-interrupted-flip": (
                f"completed the interrupted flip: {self.live} is live (was {self.previous})"
            ),
        }[self.action]
        return text + (f"; version {self.version}" if self.version else "")


def _flip(
    ws: WorkspaceClient, config: BlueGreenConfig, journal: Journal, pending: dict[str, Any]
) -> None:
    """Make ``pending['to']`` the only live color; the intent is in the journal already."""
    to: Color = pending["to"]
    source: Color | None = pending.get("from")
    if source and source != to:
        _set_pause(ws, color_jobs(ws, config, source), PauseStatus.PAUSED)
    _set_pause(ws, color_jobs(ws, config, to), PauseStatus.UNPAUSED)
    journal.live = to
    if source and source != to:
        journal.previous = source
    journal.pending = None
    journal.record(pending["operation"], to=to, **{"from": source, "owner": pending["owner"]})
    journal.save(ws, config)


def _start_flip(
    ws: WorkspaceClient,
    config: BlueGreenConfig,
    journal: Journal,
    *,
    operation: str,
    to: Color,
    source: Color | None,
    owner: str,
    version: str | None,
) -> dict[str, Any]:
    pending = {
        "operation": operation,
        "to": to,
        "from": source,
        "owner": owner,
        "version": version,
        "started_at": _now(),
    }
    journal.pending = pending
    journal.save(ws, config)  # the intent is durable before any schedule changes
    _flip(ws, config, journal, pending)
    return pending


def _finish_pending(ws: WorkspaceClient, config: BlueGreenConfig, journal: Journal) -> dict | None:
    pending = journal.pending
    if pending:
        log.info("completing an interrupted %s to %s", pending["operation"], pending["to"])
        _flip(ws, config, journal, pending)
    return pending


def run_smoke(ws: WorkspaceClient, config: BlueGreenConfig, color: Color) -> int:
    """Run ``color``'s smoke job with the smoke parameters, wait, and return the run id.

    Raises :class:`SmokeRunFailed` unless the run ends in SUCCESS.
    """
    jobs = [
        j
        for j in color_jobs(ws, config, color)
        if ((j.settings.tags or {}).get("component")) == config.smoke_component
    ]
    if len(jobs) != 1:
        raise BlueGreenError(
            f"expected one {color} job tagged component={config.smoke_component}, found "
            f"{len(jobs)}; is target {config.target(color)} deployed?"
        )
    job = jobs[0]
    log.info("smoke run of %s (job %s)", job.settings.name, job.job_id)
    waiter = ws.jobs.run_now(job.job_id, job_parameters=config.smoke_parameters or None)
    run = waiter.result(timeout=config.smoke_timeout)
    result = run.state.result_state if run.state else None
    if result != RunResultState.SUCCESS:
        message = (run.state.state_message if run.state else "") or ""
        raise SmokeRunFailed(
            f"smoke run {run.run_id} of {job.settings.name} ended "
            f"{result.value if result else 'without a result'}"
            f"{': ' + message if message else ''}; {color} stays idle and nothing was flipped"
            f"{' (see ' + run.run_page_url + ')' if run.run_page_url else ''}"
        )
    return run.run_id


def promote(
    ws: WorkspaceClient,
    config: BlueGreenConfig,
    deploy: Deployer,
    *,
    version: str,
    owner: str,
) -> Outcome:
    """Deploy ``version`` to the idle color, smoke-test it, and make it live if that passed.

    Safe to rerun with the same ``owner``: an interrupted flip is completed, a version that is
    already live is left alone.
    """
    with WorkspaceLock(ws, config, owner, f"promote {version}"):
        journal = Journal.load(ws, config)
        pending = _finish_pending(ws, config, journal)
        if pending and pending["operation"] == "promote" and pending.get("version") == version:
            return Outcome(
                "completed-interrupted-flip", pending["to"], pending.get("from"), version
            )

        live = live_color(ws, config)
        if live and journal.versions.get(live) == version:
            return Outcome("already-live", live, journal.previous, version)
        idle: Color = other(live) if live else "blue"

        log.info("deploying %s to %s (schedules paused)", version, config.target(idle))
        deploy(idle)
        journal.versions[idle] = version
        journal.record("deployed", color=idle, version=version, owner=owner)
        journal.save(ws, config)

        try:
            run_id = run_smoke(ws, config, idle)
        except SmokeRunFailed as exc:
            journal.record("smoke-failed", color=idle, version=version, error=str(exc))
            journal.save(ws, config)
            raise

        _start_flip(
            ws,
            config,
            journal,
            operation="promote",
            to=idle,
            source=live,
            owner=owner,
            version=version,
        )
        return Outcome("flipped", idle, live, version, run_id)


def rollback(ws: WorkspaceClient, config: BlueGreenConfig, *, owner: str) -> Outcome:
    """Make the previous color live again (its jobs still hold the version it ran before)."""
    with WorkspaceLock(ws, config, owner, "rollback"):
        journal = Journal.load(ws, config)
        pending = _finish_pending(ws, config, journal)
        if pending and pending["operation"] == "rollback":
            return Outcome("completed-interrupted-flip", pending["to"], pending.get("from"))

        live = live_color(ws, config)
        target = journal.previous if journal.previous != live else None
        if live is None or target is None:
            raise BlueGreenError(
                f"nothing to roll back to: live color is {live or 'none'} and the journal "
                f"{config.journal_path} records no other previously live color"
            )
        if not _scheduled(color_jobs(ws, config, target)):
            raise BlueGreenError(
                f"cannot roll back to {target}: it has no scheduled jobs deployed "
                f"(target {config.target(target)})"
            )
        _start_flip(
            ws,
            config,
            journal,
            operation="rollback",
            to=target,
            source=live,
            owner=owner,
            version=journal.versions.get(target),
        )
        return Outcome("flipped", target, live, journal.versions.get(target))


def status(ws: WorkspaceClient, config: BlueGreenConfig) -> dict[str, Any]:
    """Everything an operator needs to know, read from the workspace."""
    journal = Journal.load(ws, config)
    states = schedule_states(ws, config)
    try:
        live: str | None = live_color(ws, config)
    except BlueGreenError as exc:
        live = f"inconsistent: {exc}"
    return {
        "live": live,
        "previous": journal.previous,
        "versions": journal.versions,
        "schedules": states,
        "pending": journal.pending,
        "lock": _read_json(ws, config.lock_path),
        "state_dir": config.state_dir,
        "history": journal.history[-5:],
    }
