"""check_quality: evaluate the expectations of conf/base/quality.yaml on the run's slices.

Results (counts and sample failing values per rule) replace the run date's rows of
``ops.dq_results``. A failed ``fail``-severity rule makes the job exit non-zero, which stops the
pipeline before anything downstream (publishing to the warehouse) runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

from decisionlake import lake
from decisionlake.quality import (
    RESULT_SCHEMA,
    RuleResult,
    evaluate_referential,
    evaluate_rows,
    evaluate_volume,
    results_frame,
)
from decisionlake.runtime import JobContext, run_job

NAME = "check_quality"


class QualityGateError(RuntimeError):
    """Raised when a fail-severity expectation does not hold."""


def run(ctx: JobContext) -> dict[str, Any]:
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    quality = cfg.quality
    results_uri = cfg.table_uri("ops.dq_results")
    history = (
        lake.read_delta(spark, results_uri) if lake.delta_table_exists(spark, results_uri) else None
    )
    results: list[RuleResult] = []
    for table, expectations in sorted(quality.expectations.items()):
        with log.stage("check", table=table) as st:
            uri = cfg.table_uri(table)
            if not lake.delta_table_exists(spark, uri):
                raise QualityGateError(f"{table}: no table at {uri}")
            data = lake.read_delta(spark, uri)
            window = quality.run_window_column.get(table)
            if window:
                data = data.where(F.col(window) == F.lit(ctx.run_date))
            found = evaluate_rows(data, table, expectations, run_date=ctx.run_date)
            for e in expectations:
                if e.rule == "referential":
                    reference = lake.read_delta(spark, cfg.table_uri(e.to_table))
                    found.append(evaluate_referential(data, table, e, reference))
                elif e.rule == "volume":
                    previous: list[int] = []
                    if history is not None:
                        previous = [
                            int(r["rows_checked"])
                            for r in history.where(
                                (F.col("table") == table)
                                & (F.col("rule") == "volume")
                                & (F.col("run_date") < F.lit(ctx.run_date))
                            )
                            .orderBy(F.col("run_date").desc())
                            .limit(e.history)
                            .collect()  # at most `history` rows
                        ]
                    found.append(evaluate_volume(data.count(), table, e, previous))
            results += found
            st.add(rules=len(found), failed=sum(not r.passed for r in found))
    for r in results:
        if not r.passed:
            log.event(
                "expectation_failed",
                level="WARN" if r.severity == "warn" else "ERROR",
                table=r.table,
                rule=r.rule,
                columns=r.columns,
                rows_failed=r.rows_failed,
                sample=r.sample_failing,
                detail=r.detail,
            )
    lake.replace_slice(
        results_frame(spark, results, ctx.run_date),
        results_uri,
        predicate=f"run_date = '{ctx.run_date}'",
        schema=RESULT_SCHEMA,
        partition_by=["run_date"],
    )
    blocking = [r for r in results if not r.passed and r.severity == "fail"]
    summary = {
        "run_date": ctx.run_date.isoformat(),
        "rules": len(results),
        "failed": sum(not r.passed for r in results),
        "blocking": [f"{r.table}.{r.rule}({r.columns})" for r in blocking],
        "tables": {"ops.dq_results": results_uri},
    }
    if blocking:
        raise QualityGateError(
            f"{len(blocking)} blocking expectation(s) failed: " + ", ".join(summary["blocking"])
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
