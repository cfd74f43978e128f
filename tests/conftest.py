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
