"""ingest_ga4: a GA4 BigQuery export (NDJSON) of one export date -> bronze.ga4_events."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io.ingest import LineIngestSpec, run_line_ingest
from decisionlake.sources.ga4_export import BRONZE_SCHEMA, to_bronze_ga4, validate_ga4

NAME = "ingest_ga4"

SPEC = LineIngestSpec(
    name=NAME,
    landing_dir="ga4",
    bronze_table="bronze.ga4_events",
    quarantine_table="bronze.ga4_events_quarantine",
    bronze_schema=BRONZE_SCHEMA,
    key="event_id",
    order_by=("event_ts", "source_file"),
    partition_by=("event_date",),
    validate=validate_ga4,
    to_bronze=to_bronze_ga4,
)


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one export date of GA4 events."""
    return run_line_ingest(ctx, SPEC)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
