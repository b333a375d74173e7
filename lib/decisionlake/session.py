"""Ad-hoc sessions (notebooks, ``pyspark`` shells on a cluster): one call, tables by name.

from decisionlake.session import connect
spark, tables = connect("dev")
tables["gold.advisor_360"].where("as_of_date = '2026-11-24'").show()
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from decisionlake import lake
from decisionlake.config import AppConfig, load_config
from decisionlake.spark import get_spark


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
        return iter(sorted(self.cfg.tables))

    def __len__(self) -> int:
        return len(self.cfg.tables)

    def uri(self, name: str) -> str:
        return self.cfg.table_uri(name)

    def existing(self) -> list[str]:
        """The logical names that hold a table now."""
        return [n for n in self if lake.delta_table_exists(self.spark, self.cfg.table_uri(n))]


def connect(
    env: str = "local", *, overrides: Mapping[str, Any] | None = None, app_name: str = "notebook"
) -> tuple[SparkSession, Tables]:
    """A configured session (reused if one is active) and the environment's tables."""
    cfg = load_config(env, overrides=dict(overrides or {}))
    spark = get_spark(cfg, app_name=f"decisionlake-{app_name}")
    return spark, Tables(spark, cfg)
