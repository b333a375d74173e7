"""ingest_clickstream: raw web event JSON lines of one arrival date -> bronze Delta.

Reads ``<landing>/clickstream/date=<run-date>/``, validates every line against the event
contract, writes valid events to ``bronze.clickstream`` (insert-only MERGE on event_id,
partitioned by event date) and rejected lines to ``bronze.clickstream_quarantine`` (replaced per
run date), then checks: lines read = valid + quarantined, valid unique = inserted + present.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io.ingest import LineIngestSpec, run_line_ingest
from decisionlake.sources.web_contract import BRONZE_SCHEMA
from decisionlake.sources.web_events import (
    event_date_of_valid_line,
    to_bronze_events,
    validate_events,
)

NAME = "ingest_clickstream"

SPEC = LineIngestSpec(
    name=NAME,
    landing_dir="clickstream",
    bronze_table="bronze.clickstream",
    quarantine_table="bronze.clickstream_quarantine",
    bronze_schema=BRONZE_SCHEMA,
    key="event_id",
    order_by=("event_ts", "source_file"),
    partition_by=("event_date",),
    validate=validate_events,
    to_bronze=to_bronze_events,
    partition_of_valid_line=event_date_of_valid_line,
)


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one arrival date; returns the accounting summary."""
    return run_line_ingest(ctx, SPEC)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
