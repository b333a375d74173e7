"""export_call_list: the run date's call list (contacts only) → the warehouse (staged COPY)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.warehouse.slices import export_slice

NAME = "export_call_list"


def run(ctx: JobContext) -> dict[str, Any]:
    """Publish the run date's call list; the control group stays in the lake."""
    return {"run_date": ctx.run_date.isoformat(), **export_slice(ctx, "call_list")}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
