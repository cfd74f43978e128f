"""Where the SparkSession comes from.

Inside Databricks the runtime's session is used. With databricks-connect installed and
configured (``DATABRICKS_HOST`` / a ``DEFAULT`` profile / ``DATABRICKS_CLUSTER_ID`` or
serverless) a ``DatabricksSession`` is built. Otherwise a local Spark session with Delta
Lake, whose jars setup fetched into the local Maven repository: starting it never needs
the network.

``local_connect_session`` starts a local Spark Connect server (the local Delta session with
Spark's Connect plugin) and returns a client of it: the library then runs as it does under
Databricks Connect, with no JVM on the client side.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from lakeline.errors import LakelineError

# Databricks Runtime 15.4 LTS ships Spark 3.5.0 and Delta Lake 3.2 (Scala 2.12).
DELTA_VERSION = "3.2.1"
SCALA_VERSION = "2.12"
DELTA_ARTIFACTS = (
    ("io.delta", f"delta-spark_{SCALA_VERSION}", DELTA_VERSION),
    ("io.delta", "delta-storage", DELTA_VERSION),
)
# The Spark Connect server plugin for a local Connect server (tests/connect). 3.5.4 is the
# 3.5 release Maven Central serves here; it runs on the pyspark 3.5.3 JVM.
CONNECT_ARTIFACT = ("org.apache.spark", f"spark-connect_{SCALA_VERSION}", "3.5.4")


_LOG_CONFIG = Path(__file__).parent / "local" / "log4j2.properties"


def maven_repository() -> Path:
    return Path(os.environ.get("LAKELINE_M2_REPO", Path.home() / ".m2" / "repository"))


def _maven_jar(group: str, artifact: str, version: str, what: str) -> Path:
    jar = maven_repository().joinpath(
        *group.split("."), artifact, version, f"{artifact}-{version}.jar"
    )
    if not jar.is_file():
        raise LakelineError(
            f"{what} jar {jar} is missing; run `bash .ci/setup` to fetch it with Maven"
        )
    return jar


def delta_jars() -> list[Path]:
    """Paths of the Delta jars in the local Maven repository; raises if setup has not run."""
    return [_maven_jar(*coords, "Delta Lake") for coords in DELTA_ARTIFACTS]


def connect_jar() -> Path:
    """Path of the Spark Connect server jar in the local Maven repository."""
    return _maven_jar(*CONNECT_ARTIFACT, "Spark Connect")


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


def local_session(
    warehouse: str | Path, app_name: str = "lakeline", jars: tuple[Path, ...] = (), **conf: str
):
    """A local SparkSession with Delta Lake, tuned for small data on a laptop or CI runner.

    ``warehouse`` holds the managed tables; the Derby metastore lives beside it so table
    names survive between runs. ``jars`` are added to the Delta jars.
    """
    from pyspark.sql import SparkSession

    warehouse = Path(warehouse).resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(os.environ.get("LAKELINE_SPARK_MASTER", "local[2]"))
        .config("spark.jars", ",".join(str(j) for j in [*delta_jars(), *jars]))
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
        # A long-lived local session keeps what it has seen within bounds: Delta caches one
        # DeltaLog (with its snapshot's plans and encoders) per table touched, 10 000 by
        # default, and the status store keeps 1 000 query plans for a UI that is off.
        .config("spark.databricks.delta.delta.log.cacheSize", "200")
        .config("spark.sql.ui.retainedExecutions", "100")
        .config("spark.ui.retainedJobs", "100")
        .config("spark.ui.retainedStages", "100")
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


def local_connect_session(warehouse: str | Path, port: int | None = None, **conf: str):
    """Start a local Spark Connect server over Delta in this process and return its client.

    The server is ``local_session`` with Spark's Connect plugin listening on ``port`` (a free
    one when not given); the client is ``sc://localhost:<port>``, a session with no JVM, as
    under Databricks Connect. Like pyspark's own ``remote("local")`` mode, this process is
    then in Connect mode: call it before, and instead of, any classic session. The
    server's foreachBatch workers run this Python (``PYSPARK_PYTHON``), so they import the
    same ``lakeline``.
    """
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is not None:
        raise LakelineError(
            "a classic SparkSession is already running in this process; start the local "
            "Spark Connect server in a process of its own"
        )
    if port is None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    server = local_session(
        warehouse,
        app_name="lakeline-connect-server",
        jars=(connect_jar(),),
        spark__plugins="org.apache.spark.sql.connect.SparkConnectPlugin",
        spark__connect__grpc__binding__port=str(port),
        **conf,
    )
    server.sparkContext.setLogLevel("ERROR")
    # As pyspark's remote("local") mode: from here on this process speaks Spark Connect
    # (pyspark.sql.functions builds Connect columns).
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    return ConnectSession.builder.remote(f"sc://localhost:{port}").getOrCreate()


def is_connect(spark) -> bool:
    """True when ``spark`` is a Spark Connect client (OSS Spark Connect or Databricks
    Connect): no JVM here, so no ``_jvm`` / ``sparkContext``, and foreachBatch functions run
    next to the server."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def in_thread(session, function):
    """``function`` made to run in a thread of its own with ``session`` active in the JVM.

    A new Python thread starts with no active session on the JVM side, and Spark then
    analyses a DataFrame write with default settings rather than the session's: without
    Delta's catalog, an append to a Delta table created by ``catalog.createTable`` is
    refused for a schema mismatch. (``spark.sql`` and ``createDataFrame`` set the active
    session themselves.) Spark Connect has nothing to set.
    """

    def run(*args, **kwargs):
        if not is_connect(session):
            session._jvm.SparkSession.setActiveSession(session._jsparkSession)
        return function(*args, **kwargs)

    return run


def quiet(spark) -> None:
    """Only errors in the console (a classic session's log level; a no-op over Connect)."""
    if not is_connect(spark):
        spark.sparkContext.setLogLevel("ERROR")


def on_databricks(spark) -> bool:
    """True when ``spark`` runs on Databricks compute (the runtime or Databricks Connect),
    where Auto Loader (``cloudFiles``) and Unity Catalog are there.

    A Spark Connect session counts only when Databricks Connect built it: its client's
    channel builder is ``databricks.connect``'s. A client of a plain Spark Connect server
    (``local_connect_session``) is not on Databricks.
    """
    if in_databricks_runtime():
        return True
    if type(spark).__module__.startswith("databricks"):
        return True
    if not is_connect(spark):
        return False
    builder = getattr(getattr(spark, "client", None), "_builder", None)
    return type(builder).__module__.startswith("databricks")


def is_unity_catalog(spark) -> bool:
    """True on Databricks (runtime or Connect), where tables have three-part names."""
    return on_databricks(spark)
