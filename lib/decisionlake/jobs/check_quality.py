"""check_quality: evaluate the expectations of conf/base/quality.yaml on the run's slices.

Results (counts and sample failing values per rule) replace the run date's rows of
``ops.dq_results``. Rows failing a ``quarantine``-severity rule are moved to ``ops.dq_quarantine``
with the rule's name. A failed ``fail``-severity rule makes the job exit non-zero, which stops
the pipeline before anything downstream (scoring, publishing to the warehouse) runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import Expectation
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.quality.rules import (
    RESULT_SCHEMA,
    RuleResult,
    columns_of,
    evaluate_rows,
    evaluate_volume,
    failing_rows,
    results_frame,
)

NAME = "check_quality"


class QualityGateError(RuntimeError):
    """Raised when a fail-severity expectation does not hold."""


QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("columns", T.StringType()),
        T.StructField("row", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)


def _quarantine(
    ctx: JobContext,
    table: str,
    window: str | None,
    expectations: list[Expectation],
    found: list[RuleResult],
) -> dict[str, int]:
    """Move the run slice's rows failing a quarantine-severity rule to ops.dq_quarantine.

    The rows (as JSON, with the rule's name) replace this run date's slice for that table and
    rule, then are deleted from the table, so reruns neither lose nor duplicate them.
    """
    spark, uri = ctx.spark, ctx.cfg.table_uri(table)
    moved: dict[str, int] = {}
    by_rule = {(r.rule, r.columns): r for r in found}
    for e in expectations:
        result = by_rule.get((e.rule, columns_of(e)))
        condition = failing_rows(e)
        if e.severity != "quarantine" or condition is None or result is None:
            continue
        scope = F.col(window) == F.lit(ctx.run_date) if window else F.lit(True)
        name = f"{e.rule}({result.columns})"
        target = ctx.cfg.table_uri("ops.dq_quarantine")
        predicate = f"run_date = '{ctx.run_date}' AND `table` = '{table}' AND rule = '{name}'"
        if result.rows_failed:
            data = lake.read_delta(spark, uri).where(scope & condition)
            rows = data.select(
                F.lit(ctx.run_date).alias("run_date"),
                F.lit(table).alias("table"),
                F.lit(name).alias("rule"),
                F.lit(result.columns).alias("columns"),
                F.to_json(F.struct(*[F.col(c) for c in data.columns])).alias("row"),
                F.lit(ctx.run_id).alias("run_id"),
            )
            lake.replace_slice(rows, target, predicate=predicate, schema=QUARANTINE_SCHEMA,
                               partition_by=["run_date"])  # fmt: skip
            lake.delete_rows(spark, uri, scope & condition)
            moved[name] = result.rows_failed
    return moved


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
            references = {
                e.to_table: lake.read_delta(spark, cfg.table_uri(e.to_table))
                for e in expectations
                if e.rule == "referential" and e.to_table
            }
            found = evaluate_rows(
                data, table, expectations, run_date=ctx.run_date, references=references
            )
            moved = _quarantine(ctx, table, window, expectations, found)
            if moved:
                st.add(quarantined=moved)
            # The row rules counted the slice; after a quarantine it is counted again.
            rows = None if moved or not found else found[0].rows_checked
            for e in expectations:
                if e.rule == "volume":
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
                    found.append(evaluate_volume(
                        data.count() if rows is None else rows, table, e, previous
                    ))  # fmt: skip
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
