"""The one SparkSession factory of the project."""

from __future__ import annotations

import os
import sys

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from decisionlake.config import AppConfig
from decisionlake.core.jars import local_jars, require_jar

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def session_conf(cfg: AppConfig, app_name: str) -> dict[str, str]:
    """The Spark settings the factory applies, as a plain mapping (inspectable in tests).

    Local mode wires Delta, the cached jars and the Python of this process. ``emr`` and
    ``cluster`` (the project's local standalone cluster) add only what the cluster does not
    provide: spark-submit brings the master, the jars and the Python environment, and the
    cluster's spark-defaults bring Delta. Any mode gets the S3 stand-in's endpoint when the
    environment names one, and the multi-writer Delta log store when it names its table.
    """
    spark_cfg = cfg.spark
    conf: dict[str, str] = {
        "spark.app.name": app_name,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(spark_cfg.shuffle_partitions),
        # Delta MERGE keeps its statistics-based file skipping; no schema drift by accident.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.debug.maxToStringFields": "200",
        # A repeated "Key:" line in a note header keeps its last value instead of failing.
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        # Delta's optimized write: one extra shuffle by partition value before a write, so a
        # day's slice is one right-sized file (bins of 512 MiB) rather than a file from every
        # task that holds a row of it. The daily writes replace a few date partitions at a
        # time, so without it every run adds shuffle-partitions x dates small files that each
        # later read lists, opens and plans for (measured in README, Performance).
        "spark.databricks.delta.optimizeWrite.enabled": "true",
    }
    if spark_cfg.mode == "local":
        conf.update(
            {
                "spark.master": spark_cfg.master,
                "spark.driver.memory": spark_cfg.driver_memory,
                "spark.ui.enabled": str(spark_cfg.ui_enabled).lower(),
                "spark.ui.showConsoleProgress": "false",
                "spark.jars": ",".join(str(j) for j in local_jars()),
                "spark.sql.extensions": DELTA_EXTENSION,
                "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.driver.host": "127.0.0.1",
                "spark.sql.adaptive.enabled": "true",
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.pyspark.python": sys.executable,
                "spark.pyspark.driver.python": sys.executable,
            }
        )
    if spark_cfg.mode != "emr":  # EMR sets its own; elsewhere not the driver's working folder
        conf["spark.sql.warehouse.dir"] = f"{cfg.paths.artifacts.rstrip('/')}/spark-warehouse"
    conf.update(_s3a_conf(cfg))
    conf.update(_log_store_conf(cfg))
    conf.update(spark_cfg.conf)
    return conf


def s3_stand_in_conf(endpoint: str, region: str) -> dict[str, str]:
    """How S3A reaches an S3 endpoint other than AWS's (the local stand-in): shared by the
    session factory and the local cluster's spark-defaults, since spark-submit opens S3A
    filesystems (job file, archives) with the cluster's settings and they stay cached."""
    prefix = "spark.hadoop.fs.s3a."
    return {
        f"{prefix}endpoint": endpoint,
        f"{prefix}endpoint.region": region,
        f"{prefix}path.style.access": "true",
        f"{prefix}connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        # copyFromLocalFile's transfer-manager upload (the async client) gets the stand-in's
        # "100 Continue" back as an error and retries for an hour; the plain stream copy does
        # not. MLflow copies a model to the default filesystem this way before loading it.
        f"{prefix}optimized.copy.from.local.enabled": "false",
    }


def _s3a_conf(cfg: AppConfig) -> dict[str, str]:
    endpoint = cfg.storage.s3_endpoint
    if not endpoint:
        return {}
    prefix = "spark.hadoop.fs.s3a."
    return {
        **s3_stand_in_conf(endpoint, cfg.storage.region),
        f"{prefix}aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        # Keys come from the process environment (moto's fake ones locally), never from config.
        f"{prefix}access.key": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        f"{prefix}secret.key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        f"{prefix}impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        f"{prefix}fast.upload": "true",
    }


LOG_STORE_CLASS = "io.decisionlake.delta.DynamoDBLogStore"
LOG_STORE_JAR = "decisionlake-delta-logstore"


def _log_store_conf(cfg: AppConfig) -> dict[str, str]:
    """Delta commits arbitrated by DynamoDB, so drivers on several clusters can write one table.

    The store (jvm/delta-dynamodb-logstore) follows Delta's S3DynamoDBLogStore protocol and
    table layout on the AWS SDK v2; see the README's "Running on EMR".
    """
    table = cfg.storage.dynamodb_log_store_table
    if not table:
        return {}
    if cfg.spark.mode == "local":
        require_jar(LOG_STORE_JAR, "storage.dynamodb_log_store_table")
    prefix = "spark.hadoop.decisionlake.delta.dynamodb."
    conf = {
        # s3a:// here and on a self-managed cluster; s3:// is EMRFS on EMR.
        "spark.delta.logStore.s3a.impl": LOG_STORE_CLASS,
        "spark.delta.logStore.s3.impl": LOG_STORE_CLASS,
        f"{prefix}table": table,
        f"{prefix}region": cfg.storage.region,
    }
    endpoint = cfg.services.aws_endpoint or cfg.storage.s3_endpoint
    if endpoint:
        conf[f"{prefix}endpoint"] = endpoint
    return conf


def _alive(session: SparkSession) -> bool:
    """False for a classic session whose context was stopped; Spark Connect ones count as alive."""
    try:
        return session.sparkContext._jsc is not None
    except Exception:  # Spark Connect has no SparkContext
        return True


def get_spark(cfg: AppConfig, app_name: str = "decisionlake") -> SparkSession:
    """Return the active session or build one from the configuration.

    Inside ``spark-submit`` or a notebook the active session is reused as it is; so is the
    default one from another thread (steps the local runner runs side by side).
    """
    try:
        active: SparkSession | None = SparkSession.active()
    except PySparkRuntimeError:  # no session yet
        active = None
    if active is not None and _alive(active):
        # Dates derive from timestamps everywhere: a notebook's local time zone would shift them.
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active
    if cfg.spark.mode == "local":
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder
    for key, value in session_conf(cfg, app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.spark.log_level)
    return spark
