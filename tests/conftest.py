"""One local SparkSession with Delta for the whole suite; tests isolate by catalog and folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from lakeline.session import local_session

    session = local_session(
        tmp_path_factory.mktemp("warehouse"),
        app_name="lakeline-tests",
        spark__sql__shuffle__partitions="2",
        spark__default__parallelism="2",
        # The suite touches thousands of tables in one JVM: a small DeltaLog cache and room
        # to spare keep its heap from filling up (and codegen from failing) late in the run.
        spark__databricks__delta__delta__log__cacheSize="32",
        spark__driver__memory="2g",
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def env(spark, tmp_path, request):
    """An Environment with its own catalog (so its own local databases) and folders."""
    from lakeline.environment import Environment

    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    environment = Environment(
        catalog=f"t_{digest}",
        landing_root=str(tmp_path / "landing"),
        checkpoint_root=str(tmp_path / "checkpoints"),
        unity_catalog=False,
    )
    environment.ensure_schemas(spark)
    return environment


@pytest.fixture
def repo() -> Path:
    return REPO
