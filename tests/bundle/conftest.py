"""Fixtures for the bundle and delivery tests: the real Databricks CLI and the workspace stand-in.

The CLI is the Go binary `.ci/tools.sh` builds (or the one `$LAKELINE_DATABRICKS_CLI` names).
Without it these tests fail: they exist to prove that the real CLI accepts and deploys the
bundle, so skipping would hide exactly what they check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient

from lakeline.deploy.bundle_cli import CLI_ENV, find_cli, tools_dir
from lakeline.testing.workspace_standin import WorkspaceStandIn

REPO = Path(__file__).resolve().parents[2]
SERVICE_PRINCIPAL = "6d1c1a52-6f0e-4d2e-9a5b-2c4a1c0de001"
DEVELOPER = "dana.developer@example.com"

# What a bundle copy holds: the repository minus local state, caches and environments.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".databricks", ".lakeline", "__pycache__", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture(scope="session")
def databricks_cli() -> Path:
    cli = find_cli()
    if cli is None or not os.access(cli, os.X_OK):
        pytest.fail(
            f"the Databricks CLI is missing: set ${CLI_ENV} or run `bash .ci/tools.sh` "
            f"(it builds the pinned version into {tools_dir() / 'bin'})",
            pytrace=False,
        )
    return cli


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class BundleCli:
    """Runs `databricks bundle ...` in a bundle folder against one stand-in."""

    cli: Path
    bundle_dir: Path
    standin: WorkspaceStandIn
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # A private home: no ~/.databrickscfg or CLI caches of the developer leak in.
            "HOME": str(self.home),
            "DATABRICKS_HOST": self.standin.url,
            "DATABRICKS_TOKEN": "dapi-standin-dummy-token",
            "DATABRICKS_CLI_DISABLE_TELEMETRY": "1",
            # The Go SDK throttles to 15 requests/s by default; the stand-in needs no protection.
            "DATABRICKS_RATE_LIMIT": "1000",
            "BUNDLE_VAR_service_principal": SERVICE_PRINCIPAL,
        }

    def __call__(self, *args: str, check: bool = True) -> CliResult:
        done = subprocess.run(
            [str(self.cli), "bundle", *args],
            cwd=self.bundle_dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = CliResult(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            pytest.fail(
                f"databricks bundle {' '.join(args)} exited {done.returncode}:\n{result.output}",
                pytrace=False,
            )
        return result


@pytest.fixture(scope="session")
def copy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Copies the repository's bundle to a fresh folder (the CLI keeps local state in it)."""

    def copy() -> Path:
        target = tmp_path_factory.mktemp("bundle") / "lakeline"
        shutil.copytree(REPO, target, ignore=_NOT_COPIED)
        return target

    return copy


@pytest.fixture(scope="session")
def standin_factory() -> Iterator[Callable[..., WorkspaceStandIn]]:
    """Starts stand-ins on loopback (``user_name`` is who SCIM Me says the caller is)."""
    started: list[WorkspaceStandIn] = []

    def start(user_name: str = SERVICE_PRINCIPAL) -> WorkspaceStandIn:
        ws = WorkspaceStandIn(user_name=user_name).start()
        started.append(ws)
        return ws

    yield start
    for ws in started:
        ws.stop()


@pytest.fixture(scope="session")
def bundle_cli(
    databricks_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Path, WorkspaceStandIn], BundleCli]:
    def make(bundle_dir: Path, standin: WorkspaceStandIn) -> BundleCli:
        return BundleCli(databricks_cli, bundle_dir, standin, tmp_path_factory.mktemp("home"))

    return make


def sdk_client(standin: WorkspaceStandIn) -> WorkspaceClient:
    """The real databricks-sdk client, pointed at the stand-in with a dummy token."""
    return WorkspaceClient(host=standin.url, token="dapi-standin-dummy-token", auth_type="pat")


@pytest.fixture
def sdk() -> Callable[[WorkspaceStandIn], WorkspaceClient]:
    return sdk_client


@pytest.fixture(autouse=True)
def _no_ambient_databricks_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The SDK must see only what a test gives it, never a developer's profile or env."""
    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "BUNDLE_VAR_")) and name != CLI_ENV:
            monkeypatch.delenv(name)
    missing = tmp_path_factory.getbasetemp() / "no-databrickscfg"
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(missing))
