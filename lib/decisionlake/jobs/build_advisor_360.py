"""build_advisor_360: silver sessions, page views, identity, CRM -> gold.advisor_360 as of D."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

from decisionlake.core.frames import cached
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.gold.advisor_360 import advisor_360
from decisionlake.io import lake

NAME = "build_advisor_360"


def run(ctx: JobContext) -> dict[str, Any]:
    """Replace the run date's slice of gold.advisor_360."""
    cfg, spark = ctx.cfg, ctx.spark
    uri = cfg.table_uri("gold.advisor_360")
    longest = f"sessions_{max(cfg.advisor_360.windows_days)}d"

    def table(name: str):
        return lake.read_delta(spark, cfg.table_uri(name))

    # The identity as it was known on the as-of date: its latest version not after it.
    identity_all = table("silver.identity_map")
    version = (
        identity_all.where(F.col("identity_version") <= F.lit(ctx.run_date))
        .agg(F.max("identity_version").alias("v"))
        .first()["v"]  # one row
    )
    identity = identity_all.where(F.col("identity_version") == F.lit(version))

    with ctx.log.stage("advisor_360", as_of=ctx.run_date.isoformat()) as st:
        rows = advisor_360(
            table("silver.advisors"),
            table("silver.sessions"),
            table("silver.page_views"),
            identity,
            as_of=ctx.run_date,
            settings=cfg.advisor_360,
            text_features=(
                table("gold.advisor_text_features")
                if lake.delta_table_exists(spark, cfg.table_uri("gold.advisor_text_features"))
                else None
            ),
        ).withColumn("run_id", F.lit(ctx.run_id))
        # Counted from the cached slice, which the write then reads: no read-back of the new
        # version (a snapshot, a file filter and a scan), and no Observation (lake.replace_slice
        # says why not).
        with cached(rows) as rows:
            active = rows.agg(
                F.count("*").alias("rows"),
                F.coalesce(F.sum((F.col(longest) > 0).cast("int")), F.lit(0)).alias("active"),
            ).first()  # one row
            metrics = lake.replace_slice(
                rows,
                uri,
                predicate=f"as_of_date = '{ctx.run_date.isoformat()}'",
                partition_by=["as_of_date"],
                add_new_columns=True,
            )
        st.add(rows=active["rows"], advisors_active=active["active"])
    return {
        "run_date": ctx.run_date.isoformat(),
        "rows": active["rows"],
        "advisors_active": active["active"],
        "version": metrics.get("version"),
        "tables": {"gold.advisor_360": uri},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
