"""ingest_crm: the CRM advisors snapshot -> bronze.crm_advisors (upsert) -> silver.advisors."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.io.ingest import LineIngestSpec, run_line_ingest
from decisionlake.sources.crm import (
    BRONZE_SCHEMA,
    COMPARED_COLUMNS,
    to_bronze_advisors,
    to_silver_advisors,
    validate_advisors,
)

NAME = "ingest_crm"

SPEC = LineIngestSpec(
    name=NAME,
    landing_dir="crm/advisors",
    bronze_table="bronze.crm_advisors",
    quarantine_table="bronze.crm_advisors_quarantine",
    bronze_schema=BRONZE_SCHEMA,
    key="advisor_id",
    order_by=("source_file",),
    partition_by=(),
    validate=validate_advisors,
    to_bronze=to_bronze_advisors,
    dated=False,
    upsert_columns=COMPARED_COLUMNS,
)


def run(ctx: JobContext) -> dict[str, Any]:
    """Upsert the advisors snapshot, then rebuild the PII-free silver dimension."""
    summary = run_line_ingest(ctx, SPEC)
    silver_uri = ctx.cfg.table_uri("silver.advisors")
    with ctx.log.stage("write_silver_advisors", table=silver_uri) as st:
        bronze = lake.read_delta(ctx.spark, ctx.cfg.table_uri(SPEC.bronze_table))
        key = pseudonymisation_key(ctx.cfg)
        metrics = lake.overwrite_table(bronze.transform(to_silver_advisors, key=key), silver_uri)
        st.add(rows_written=metrics.get("numOutputRows"), version=metrics.get("version"))
    summary["tables"]["silver.advisors"] = silver_uri
    summary["silver_advisors"] = metrics.get("numOutputRows")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
