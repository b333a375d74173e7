"""publish: chosen gold tables → a curated Delta location, registered in the Glue catalog."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import types as T

from decisionlake.config import AppConfig
from decisionlake.core.aws import aws_client
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.warehouse.staging import s3_url

NAME = "publish"


def curated_root(cfg: AppConfig) -> str:
    return cfg.publish.location or f"{cfg.paths.lake.rstrip('/').rsplit('/', 1)[0]}/curated"


def glue_columns(schema: T.StructType) -> list[dict[str, str]]:
    """Glue/Hive column types (Spark's DDL names are Hive-compatible)."""
    return [{"Name": f.name, "Type": f.dataType.simpleString()} for f in schema]


def register(
    glue: Any, *, database: str, name: str, location: str, schema: T.StructType, version: int
) -> str:
    """Create or update the Glue table of a Delta location; returns ``create``/``update``."""
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": database})
    table_input = {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "delta",
            "table_type": "DELTA",
            "spark.sql.sources.provider": "delta",
            "delta.version": str(version),
        },
        "StorageDescriptor": {"Columns": glue_columns(schema), "Location": location},
    }
    try:
        glue.create_table(DatabaseName=database, TableInput=table_input)
        return "create"
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=database, TableInput=table_input)
        return "update"


def run(ctx: JobContext) -> dict[str, Any]:
    """Copy each table (a full, atomic overwrite: reruns are no-ops in effect) and register it."""
    cfg = ctx.cfg
    glue = aws_client(cfg, "glue")
    published: dict[str, Any] = {}
    for logical in cfg.publish.tables:
        if not lake.delta_table_exists(ctx.spark, cfg.table_uri(logical)):
            # e.g. gold.scores before the first champion: reported, not an error.
            ctx.log.event("table_not_published", table=logical, reason="table does not exist yet")
            published[logical] = {"skipped": "table does not exist yet"}
            continue
        source = lake.read_delta(ctx.spark, cfg.table_uri(logical))
        target = f"{curated_root(cfg)}/{logical.replace('.', '/')}"
        with ctx.log.stage("publish", table=logical, target=target) as st:
            metrics = lake.overwrite_table(source, target)
            name = logical.replace(".", "_")
            action = register(
                glue,
                database=cfg.publish.glue_database,
                name=name,
                location=s3_url(target),
                schema=source.schema,
                version=int(metrics.get("version", 0)),
            )
            st.add(rows=metrics.get("numOutputRows"), glue=action)
        published[logical] = {
            "location": target,
            "glue_table": f"{cfg.publish.glue_database}.{name}",
            "rows": metrics.get("numOutputRows"),
            "version": metrics.get("version"),
        }
    return {"run_date": ctx.run_date.isoformat(), "published": published}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
