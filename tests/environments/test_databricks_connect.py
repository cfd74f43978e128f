"""The remote dependency group works on its own, and get_spark picks the engine it finds.

databricks-connect ships its own ``pyspark``, so the ``remote`` group can never share an
environment with the ``local`` group (pyspark + delta-spark): pyproject.toml declares them
conflicting. The remote environment is built here with uv from uv.lock, with the project's
dependencies and the remote group only, and cached in ~/.cache/lakeline/remote-env (or
$LAKELINE_REMOTE_ENV): built once per machine (a few seconds from PyPI), only checked by
``uv sync`` afterwards. lakeline itself is taken from src/lib (PYTHONPATH), so one cached
environment serves every clone of the repository.

Both environments get the same workspace configuration: a host on a closed loopback port, a
dummy token and a cluster id. With databricks-connect, get_spark builds a Databricks Connect
session aimed at that host and cluster, and its first query fails to connect there; without
it, get_spark builds a local Spark session with Delta. No mock: the real clients run.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lakeline.session import _databricks_connect_configured, maven_repository

REPO = Path(__file__).resolve().parents[2]
REMOTE_ENV = Path(
    os.environ.get("LAKELINE_REMOTE_ENV", Path.home() / ".cache" / "lakeline" / "remote-env")
)
CLUSTER_ID = "0000-000000-lakeline0"


def uv() -> list[str]:
    """uv as .ci/setup provides it: on PATH, or as a module of the system Python."""
    if found := shutil.which("uv"):
        return [found]
    module = [shutil.which("python3") or "python3", "-m", "uv"]
    if subprocess.run([*module, "--version"], capture_output=True).returncode != 0:
        pytest.fail("uv is not installed; run `bash .ci/setup`")
    return module


def uv_env(project_environment: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PROJECT_ENVIRONMENT"] = str(project_environment)
    return env


@pytest.fixture(scope="module")
def remote_python() -> Path:
    """The remote environment's python, synced from uv.lock (one sync at a time per machine)."""
    REMOTE_ENV.parent.mkdir(parents=True, exist_ok=True)
    with open(REMOTE_ENV.parent / f"{REMOTE_ENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            [*uv(), "sync", "--locked", "--no-default-groups", "--group", "remote"]
            + ["--no-install-project"],
            cwd=REPO,
            env=uv_env(REMOTE_ENV),
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert done.returncode == 0, f"uv sync of the remote group failed:\n{done.stderr}"
    return REMOTE_ENV / "bin" / "python"


@pytest.fixture
def workspace_config(tmp_path) -> dict[str, str]:
    """Environment variables of a workspace that is not there: a closed port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The SDK retries an unreachable host for retry_timeout_seconds (300 s by default), which
    # only a profile (or code) can lower; the connection itself comes from the variables.
    config = tmp_path / "databrickscfg"
    config.write_text("[lakeline-test]\nretry_timeout_seconds = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "SPARK_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        HOME=str(tmp_path),
        PYTHONPATH=str(REPO / "src" / "lib"),
        DATABRICKS_HOST=f"http://127.0.0.1:{port}",
        DATABRICKS_TOKEN="dapi-not-a-real-token",
        DATABRICKS_CLUSTER_ID=CLUSTER_ID,
        DATABRICKS_CONFIG_FILE=str(config),
        DATABRICKS_CONFIG_PROFILE="lakeline-test",
        LAKELINE_WAREHOUSE=str(tmp_path / "warehouse"),
        LAKELINE_M2_REPO=str(maven_repository()),  # HOME moved: keep the Delta jars found
    )
    return env


def run_json(python: Path, code: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_uv_refuses_to_put_the_local_and_remote_groups_together(tmp_path):
    done = subprocess.run(
        [*uv(), "sync", "--dry-run", "--locked", "--group", "remote"],
        cwd=REPO,
        env=uv_env(tmp_path / "both"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "are incompatible" in done.stderr, done.stderr


def test_the_remote_group_has_databricks_connect_and_no_local_engine(remote_python):
    found = run_json(
        remote_python,
        """
        import importlib.metadata as md, json, pyspark, databricks.connect
        import lakeline.pipeline, lakeline.local.notebooks  # what the notebooks import
        def version(name):
            try:
                return md.version(name)
            except md.PackageNotFoundError:
                return None
        print(json.dumps({
            "databricks-connect": version("databricks-connect"),
            "pyspark": version("pyspark"),
            "delta-spark": version("delta-spark"),
            "pyspark_from": pyspark.__file__,
        }))
        """,
        {**uv_env(REMOTE_ENV), "PYTHONPATH": str(REPO / "src" / "lib")},
    )
    assert found["databricks-connect"].startswith("15.4.")
    assert found["pyspark"] is None and found["delta-spark"] is None
    assert found["pyspark_from"].startswith(str(REMOTE_ENV))


SESSION_PROBE = """
    import json
    from lakeline import session

    spark = session.get_spark()
    out = {
        "session": f"{type(spark).__module__}.{type(spark).__name__}",
        "unity_catalog": session.is_unity_catalog(spark),
    }
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        client = spark.client
        out["endpoint"] = client.host
        out["headers"] = dict(client._builder.metadata())
        out["channel"] = type(client._builder).__module__
        client.set_retry_policies([])  # fail the first call at once instead of backing off
        try:
            spark.range(1).collect()
        except Exception as error:
            out["error"] = f"{type(error).__name__}: {error}"
    else:
        import os
        from delta.tables import DeltaTable

        path = os.path.join(os.environ["LAKELINE_WAREHOUSE"], "probe")
        spark.range(3).write.format("delta").save(path)
        out["delta_rows"] = DeltaTable.forPath(spark, path).toDF().count()
    print(json.dumps(out))
"""


def test_get_spark_builds_a_databricks_connect_session_when_it_is_installed(
    remote_python, workspace_config
):
    got = run_json(remote_python, SESSION_PROBE, workspace_config)
    address = workspace_config["DATABRICKS_HOST"].removeprefix("http://")
    assert got["session"] == "pyspark.sql.connect.session.SparkSession"
    assert got["channel"].startswith("databricks.connect")
    assert got["unity_catalog"] is True
    assert got["endpoint"] == address
    assert got["headers"]["x-databricks-cluster-id"] == CLUSTER_ID
    assert "SparkConnectGrpcException" in got["error"]
    assert f"{address}: Failed to connect to remote host: Connection refused" in got["error"]


def test_the_local_environment_has_no_databricks_connect(monkeypatch, workspace_config):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLUSTER_ID"):
        monkeypatch.setenv(name, workspace_config[name])
    assert importlib.util.find_spec("databricks.connect") is None
    assert not _databricks_connect_configured()


def test_get_spark_builds_a_local_delta_session_without_databricks_connect(workspace_config):
    got = run_json(Path(sys.executable), SESSION_PROBE, workspace_config)
    assert got == {
        "session": "pyspark.sql.session.SparkSession",
        "unity_catalog": False,
        "delta_rows": 3,
    }
