"""Ad-hoc sessions (notebooks, ``pyspark`` shells on a cluster): one call, tables by name.

from decisionlake.ops.notebook import connect
spark, tables = connect("dev")
tables["gold.advisor_360"].where("as_of_date = '2026-11-24'").show()
spark.sql("SELECT count(*) FROM gold.advisor_360").show()   # local: registered by connect()

On EMR the Glue catalog already holds the published tables; locally ``connect`` registers every
existing table of the catalog under its logical name in the session's own catalog, so the same
SQL works in a notebook on a laptop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from decisionlake.config import AppConfig, load_config
from decisionlake.core.spark import get_spark
from decisionlake.io import lake


class Tables(Mapping[str, DataFrame]):
    """Logical table name → DataFrame (read lazily, on first access)."""

    def __init__(self, spark: SparkSession, cfg: AppConfig) -> None:
        self.spark, self.cfg = spark, cfg

    def __getitem__(self, name: str) -> DataFrame:
        uri = self.cfg.table_uri(name)  # unknown names raise with the known ones listed
        if not lake.delta_table_exists(self.spark, uri):
            raise KeyError(f"{name}: no Delta table at {uri} yet")
        return lake.read_delta(self.spark, uri)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cfg.table_names())

    def __len__(self) -> int:
        return len(self.cfg.table_names())

    def uri(self, name: str) -> str:
        return self.cfg.table_uri(name)

    def existing(self) -> list[str]:
        """The logical names that hold a table now."""
        return [n for n in self if lake.delta_table_exists(self.spark, self.cfg.table_uri(n))]


def register_tables(spark: SparkSession, tables: Tables) -> list[str]:
    """Make every existing table queryable in SQL by its logical name (``gold.advisor_360``).

    Session-catalog entries only (the data stays where it is): one database per layer, one
    external Delta table per logical name, re-pointed if it was registered elsewhere before.
    """
    registered = []
    for name in tables.existing():
        layer, _, table = name.partition(".")
        if not table:
            continue
        uri = tables.uri(name)
        # The database's own folder is an empty catalog folder under the artifacts, never the
        # lake's: a notebook's DROP DATABASE … CASCADE deletes its database folder.
        catalog = f"{tables.cfg.paths.artifacts.rstrip('/')}/notebook-catalog/{layer}.db"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}` LOCATION '{catalog}'")
        # External table: dropping the entry never touches the files at its location.
        spark.sql(f"DROP TABLE IF EXISTS `{layer}`.`{table}`")
        spark.sql(f"CREATE TABLE `{layer}`.`{table}` USING DELTA LOCATION '{uri}'")
        registered.append(name)
    return registered


def connect(
    env: str = "local",
    *,
    overrides: Mapping[str, Any] | None = None,
    app_name: str = "notebook",
    register: bool | None = None,
) -> tuple[SparkSession, Tables]:
    """A configured session (reused if one is active) and the environment's tables.

    ``register`` (default: in local mode) registers the existing tables by logical name for
    ``spark.sql``; on EMR the Glue catalog is the catalog.
    """
    cfg = load_config(env, overrides=dict(overrides or {}))
    spark = get_spark(cfg, app_name=f"decisionlake-{app_name}")
    tables = Tables(spark, cfg)
    if register if register is not None else cfg.spark.mode == "local":
        register_tables(spark, tables)
    return spark, tables
