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

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import Expectation
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.quality.rules import (
    RESULT_SCHEMA,
    RowChecks,
    RuleResult,
    columns_of,
    evaluate_tables,
    evaluate_volume,
    failing_rows,
    results_frame,
    row_checks,
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


def _run_slice(ctx: JobContext, table: str) -> DataFrame:
    """``table``'s rows of the run date (the whole table without a window column), as read now."""
    data = lake.read_delta(ctx.spark, ctx.cfg.table_uri(table))
    window = ctx.cfg.quality.run_window_column.get(table)
    return data.where(F.col(window) == F.lit(ctx.run_date)) if window else data


def _row_checks(ctx: JobContext, table: str, expectations: list[Expectation]) -> RowChecks:
    """``table``'s row rules over its run slice (the whole table without a window column)."""
    uri = ctx.cfg.table_uri(table)
    if not lake.delta_table_exists(ctx.spark, uri):
        raise QualityGateError(f"{table}: no table at {uri}")
    references = {
        e.to_table: lake.read_delta(ctx.spark, ctx.cfg.table_uri(e.to_table))
        for e in expectations
        if e.rule == "referential" and e.to_table
    }
    data = _run_slice(ctx, table)
    return row_checks(data, table, expectations, run_date=ctx.run_date, references=references)


def _volume_history(ctx: JobContext, history: DataFrame | None, table: str, runs: int) -> list[int]:
    """The row counts of ``table``'s volume rule in its latest ``runs`` earlier runs."""
    if history is None:
        return []
    earlier = history.where(
        (F.col("table") == table)
        & (F.col("rule") == "volume")
        & (F.col("run_date") < F.lit(ctx.run_date))
    )
    latest = earlier.orderBy(F.col("run_date").desc()).limit(runs)
    return [int(r["rows_checked"]) for r in latest.collect()]  # at most `runs` rows


def run(ctx: JobContext) -> dict[str, Any]:
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    results_uri = cfg.table_uri("ops.dq_results")
    history = (
        lake.read_delta(spark, results_uri) if lake.delta_table_exists(spark, results_uri) else None
    )
    tables = sorted(cfg.quality.expectations.items())
    with log.stage("evaluate", tables=len(tables)) as st:
        # One Spark query for every table's row rules (#16: 29 -> 27 Spark jobs).
        checks = [_row_checks(ctx, table, expectations) for table, expectations in tables]
        found_by_table = evaluate_tables(checks, run_date=ctx.run_date)
        st.add(rules=sum(len(found) for found in found_by_table.values()))
    results: list[RuleResult] = []
    for table, expectations in tables:
        with log.stage("check", table=table) as st:
            found = found_by_table[table]
            window = cfg.quality.run_window_column.get(table)
            moved = _quarantine(ctx, table, window, expectations, found)
            if moved:
                st.add(quarantined=moved)
            # The row rules counted the slice; after a quarantine it is counted again.
            rows = found[0].rows_checked if found and not moved else None
            for e in (e for e in expectations if e.rule == "volume"):
                # After a quarantine moved rows out, the slice as it is now.
                rows = _run_slice(ctx, table).count() if rows is None else rows
                previous = _volume_history(ctx, history, table, e.history)
                found.append(evaluate_volume(rows, table, e, previous))
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
