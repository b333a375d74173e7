"""ingest_outcomes: the day's fund trades -> bronze.fund_trades (insert-only MERGE)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io.ingest import LineIngestSpec, run_line_ingest
from decisionlake.sources.trades import BRONZE_SCHEMA, to_bronze_trades, validate_trades

NAME = "ingest_outcomes"

SPEC = LineIngestSpec(
    name=NAME,
    landing_dir="outcomes",
    bronze_table="bronze.fund_trades",
    quarantine_table="bronze.fund_trades_quarantine",
    bronze_schema=BRONZE_SCHEMA,
    key="trade_id",
    order_by=("source_file",),
    partition_by=(),
    validate=validate_trades,
    to_bronze=to_bronze_trades,
    allow_empty=True,
)


def run(ctx: JobContext) -> dict[str, Any]:
    """Insert the run date's trades, deduplicated on their content key."""
    return run_line_ingest(ctx, SPEC)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
