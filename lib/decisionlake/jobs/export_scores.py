"""export_scores: the run date's gold.scores → the warehouse table (staged COPY, upsert, verify)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.warehouse.slices import export_slice

NAME = "export_scores"


def run(ctx: JobContext) -> dict[str, Any]:
    """Publish the run date's slice of gold.scores; a rerun leaves the warehouse identical."""
    return {"run_date": ctx.run_date.isoformat(), **export_slice(ctx, "scores")}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
