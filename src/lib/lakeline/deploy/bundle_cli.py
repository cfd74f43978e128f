"""Running the Databricks CLI (the Go binary) on the bundle."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakeline.deploy.bluegreen import BlueGreenConfig, BlueGreenError, Color

CLI_ENV = "LAKELINE_DATABRICKS_CLI"


def tools_dir() -> Path:
    """Where ``.ci/tools.sh`` caches the Go tools it builds."""
    return Path(os.environ.get("LAKELINE_TOOLS") or Path.home() / ".cache/lakeline/tools")


def find_cli() -> Path | None:
    """The Databricks CLI: ``$LAKELINE_DATABRICKS_CLI``, else the one ``.ci/tools.sh`` built.

    ``databricks`` on PATH is deliberately not used: in this project's virtualenv that name
    belongs to the legacy Python CLI (pulled in by nutter), which has no ``bundle`` command.
    """
    given = os.environ.get(CLI_ENV)
    if given:
        return Path(given)
    cached = tools_dir() / "bin" / "databricks"
    return cached if cached.exists() else None


def require_cli() -> Path:
    cli = find_cli()
    if cli is None or not os.access(cli, os.X_OK):
        raise BlueGreenError(
            f"the Databricks CLI was not found (looked at ${CLI_ENV} and "
            f"{tools_dir() / 'bin/databricks'}); run `bash .ci/tools.sh` to build it"
        )
    return cli


@dataclass
class BundleDeployer:
    """Deploys one color's target with ``databricks bundle deploy``, schedules paused."""

    config: BlueGreenConfig
    bundle_dir: Path
    cli: Path | None = None
    env: Mapping[str, str] | None = None
    extra_args: Sequence[str] = field(default_factory=tuple)

    def command(self, color: Color) -> list[str]:
        return [
            str(self.cli or require_cli()),
            "bundle",
            "deploy",
            "--target",
            self.config.target(color),
            "--var",
            "schedule_pause_status=PAUSED",
            "--auto-approve",
            "--fail-on-active-runs",
            *self.extra_args,
        ]

    def __call__(self, color: Color) -> None:
        command = self.command(color)
        done = subprocess.run(
            command,
            cwd=self.bundle_dir,
            env=dict(self.env) if self.env is not None else None,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-3000:]
            raise BlueGreenError(
                f"`{' '.join(command[1:])}` failed (exit {done.returncode}); "
                f"{color} was not made live.\n{output}"
            )
