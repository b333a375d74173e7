"""The one SparkSession factory of the project."""

from __future__ import annotations

import os
import sys

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from decisionlake.config import AppConfig
from decisionlake.jars import local_jars, require_jar

_DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
_DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def session_conf(cfg: AppConfig, app_name: str) -> dict[str, str]:
    """The Spark settings the factory applies, as a plain mapping (inspectable in tests).

    Local mode wires Delta, the cached jars and the local S3 stand-in; EMR mode adds only what
    EMR does not provide, since EMR configures Delta, EMRFS and the Glue catalog itself.
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
    }
    if spark_cfg.mode == "local":
        conf.update(
            {
                "spark.master": spark_cfg.master,
                "spark.driver.memory": spark_cfg.driver_memory,
                "spark.ui.enabled": str(spark_cfg.ui_enabled).lower(),
                "spark.ui.showConsoleProgress": "false",
                "spark.jars": ",".join(str(j) for j in local_jars()),
                "spark.sql.extensions": _DELTA_EXTENSION,
                "spark.sql.catalog.spark_catalog": _DELTA_CATALOG,
                "spark.sql.warehouse.dir": f"{cfg.paths.artifacts.rstrip('/')}/spark-warehouse",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.driver.host": "127.0.0.1",
                "spark.sql.adaptive.enabled": "true",
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.pyspark.python": sys.executable,
                "spark.pyspark.driver.python": sys.executable,
            }
        )
        conf.update(_s3a_conf(cfg))
    conf.update(spark_cfg.conf)
    return conf


def _s3a_conf(cfg: AppConfig) -> dict[str, str]:
    endpoint = cfg.storage.s3_endpoint
    if not endpoint:
        return {}
    prefix = "spark.hadoop.fs.s3a."
    conf = {
        f"{prefix}endpoint": endpoint,
        f"{prefix}endpoint.region": cfg.storage.region,
        f"{prefix}path.style.access": "true",
        f"{prefix}connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        f"{prefix}aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        # Keys come from the process environment (moto's fake ones locally), never from config.
        f"{prefix}access.key": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        f"{prefix}secret.key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        f"{prefix}impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        f"{prefix}fast.upload": "true",
    }
    table = cfg.storage.dynamodb_log_store_table
    if table:
        require_jar("delta-storage-s3-dynamodb-", "storage.dynamodb_log_store_table")
        conf.update(
            {
                "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
                "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": table,
                "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": cfg.storage.region,
            }
        )
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
