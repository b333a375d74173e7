"""One configured export (``warehouse.exports.<name>``) of the run date's slice, as jobs do it."""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

from decisionlake.core.runtime import JobContext
from decisionlake.io import lake
from decisionlake.io.lineage import record_run
from decisionlake.warehouse.writer import export, make_backend


def export_slice(ctx: JobContext, name: str) -> dict[str, Any]:
    """Stage, check and load the run date's slice of the export's source; a summary.

    A call list goes without its control group (held-out advisors are never to be called).
    """
    cfg = ctx.cfg
    table = cfg.warehouse.exports[name]
    uri = cfg.table_uri(table.source)
    day = ctx.run_date.isoformat()
    rows = (
        lake.read_delta(ctx.spark, uri).where(F.col(table.slice_column) == F.lit(ctx.run_date))
        if lake.delta_table_exists(ctx.spark, uri)
        else None
    )
    if rows is not None and "assignment" in rows.columns:
        rows = rows.where(F.col("assignment") == "contact").drop("assignment")
    if rows is None or rows.isEmpty():
        # Before the first champion there is nothing to publish; say so, do not fail.
        ctx.log.event("nothing_to_export", source=table.source, run_date=day)
        return {"exported": 0, "reason": f"no rows in {table.source} for {day}"}
    source_version = lake.table_version(ctx.spark, uri)
    backend = make_backend(cfg)
    result = export(rows, table, cfg=cfg, backend=backend, run_id=ctx.run_id, log=ctx.log)
    record_run(
        ctx,
        inputs={table.source: source_version},
        outputs={},
        details={"target": table.target, "rows": result.rows, "backend": cfg.warehouse.backend},
    )
    return {
        "exported": result.rows,
        "target": result.target,
        "backend": cfg.warehouse.backend,
        "files": result.files,
        "staged_bytes": result.bytes,
        "alters": result.alters,
    }
