"""Where the SparkSession comes from.

Inside Databricks the runtime's session is used. With databricks-connect installed and
configured (``DATABRICKS_HOST`` / a ``DEFAULT`` profile / ``DATABRICKS_CLUSTER_ID`` or
serverless) a ``DatabricksSession`` is built. Otherwise a local Spark session with Delta
Lake, whose jars setup fetched into the local Maven repository: starting it never needs
the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from lakeline.errors import LakelineError

# Databricks Runtime 15.4 LTS ships Spark 3.5.0 and Delta Lake 3.2 (Scala 2.12).
DELTA_VERSION = "3.2.1"
SCALA_VERSION = "2.12"
DELTA_ARTIFACTS = (
    ("io.delta", f"delta-spark_{SCALA_VERSION}", DELTA_VERSION),
    ("io.delta", "delta-storage", DELTA_VERSION),
)


_LOG_CONFIG = Path(__file__).parent / "local" / "log4j2.properties"


def maven_repository() -> Path:
    return Path(os.environ.get("LAKELINE_M2_REPO", Path.home() / ".m2" / "repository"))


def delta_jars() -> list[Path]:
    """Paths of the Delta jars in the local Maven repository; raises if setup has not run."""
    jars = []
    for group, artifact, version in DELTA_ARTIFACTS:
        jar = maven_repository().joinpath(
            *group.split("."), artifact, version, f"{artifact}-{version}.jar"
        )
        if not jar.is_file():
            raise LakelineError(
                f"Delta Lake jar {jar} is missing; run `bash .ci/setup` to fetch it with Maven"
            )
        jars.append(jar)
    return jars


def in_databricks_runtime() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def _databricks_connect_configured() -> bool:
    try:
        import databricks.connect  # noqa: F401
    except ImportError:
        return False
    return bool(
        os.environ.get("DATABRICKS_HOST")
        or os.environ.get("DATABRICKS_CONFIG_PROFILE")
        or (Path.home() / ".databrickscfg").is_file()
    )


def local_session(warehouse: str | Path, app_name: str = "lakeline", **conf: str):
    """A local SparkSession with Delta Lake, tuned for small data on a laptop or CI runner.

    ``warehouse`` holds the managed tables; the Derby metastore lives beside it so table
    names survive between runs.
    """
    from pyspark.sql import SparkSession

    warehouse = Path(warehouse).resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(os.environ.get("LAKELINE_SPARK_MASTER", "local[2]"))
        .config("spark.jars", ",".join(str(j) for j in delta_jars()))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.warehouse.dir", str(warehouse / "tables"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={warehouse / 'metastore_db'};create=true",
        )
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dderby.system.home={warehouse} -Dlog4j2.configurationFile={_LOG_CONFIG}",
        )
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("LAKELINE_SHUFFLE_PARTITIONS", "4"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
        .enableHiveSupport()
    )
    for key, value in conf.items():
        builder = builder.config(key.replace("__", "."), value)
    return builder.getOrCreate()


def get_spark(warehouse: str | Path | None = None):
    """The session for this process: the runtime's, a Databricks Connect one, or local."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if in_databricks_runtime():
        return SparkSession.builder.getOrCreate()
    if _databricks_connect_configured():
        from databricks.connect import DatabricksSession

        return DatabricksSession.builder.getOrCreate()
    return local_session(warehouse or os.environ.get("LAKELINE_WAREHOUSE", ".lakeline/warehouse"))


def on_databricks(spark) -> bool:
    """True when ``spark`` runs on Databricks compute (the runtime or Databricks Connect),
    where Auto Loader (``cloudFiles``) and Unity Catalog are there."""
    if in_databricks_runtime():
        return True
    return type(spark).__module__.startswith(("databricks", "pyspark.sql.connect"))


def is_unity_catalog(spark) -> bool:
    """True on Databricks (runtime or Connect), where tables have three-part names."""
    return on_databricks(spark)


def is_classic(spark) -> bool:
    """True for a classic (JVM-backed) session, not a Spark Connect one: what the
    ``Observation`` of a DataFrame needs with Spark 3.5."""
    from pyspark.sql import SparkSession

    return isinstance(spark, SparkSession)
