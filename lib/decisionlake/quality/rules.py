"""Data-quality expectations evaluated in Spark, results in ``ops.dq_results``.

Row-level rules of a table (not null, accepted values, ranges, regex, uniqueness, freshness,
and referential integrity, through a left join on the reference's distinct keys) become
aggregate expressions of one pass over the run's slice, and the gate's tables are evaluated in
one Spark query; volume compares the slice's row count with the trailing average of earlier
runs. Only one row per table reaches the driver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import Expectation

RESULT_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("columns", T.StringType()),
        T.StructField("severity", T.StringType(), False),
        T.StructField("rows_checked", T.LongType(), False),
        T.StructField("rows_failed", T.LongType(), False),
        T.StructField("sample_failing", T.StringType()),
        T.StructField("passed", T.BooleanType(), False),
        T.StructField("detail", T.StringType()),
    ]
)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one expectation on one table's slice."""

    table: str
    rule: str
    columns: str
    severity: str
    rows_checked: int
    rows_failed: int
    sample_failing: str | None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.rows_failed == 0


def columns_of(e: Expectation) -> str:
    """The rule's columns as results name them (``a,b``)."""
    return ",".join(_columns(e))


def _columns(e: Expectation) -> list[str]:
    if e.column is None:
        return []
    return [e.column] if isinstance(e.column, str) else [str(c) for c in e.column]


def failing_rows(e: Expectation) -> Column | None:
    """The per-row failure condition of a row rule (None for table-level rules)."""
    return _failing(e, date.min)


def _failing(e: Expectation, run_date: date) -> Column | None:
    """A per-row condition that marks failing rows (None for table-level rules)."""
    cols = [F.col(c) for c in _columns(e)]
    if e.rule == "not_null":
        return F.greatest(*[c.isNull() for c in cols]) if len(cols) > 1 else cols[0].isNull()
    if e.rule == "accepted_values":
        return cols[0].isNotNull() & ~cols[0].isin(*e.values)
    if e.rule == "range":
        below = cols[0] < F.lit(e.min) if e.min is not None else F.lit(False)
        above = cols[0] > F.lit(e.max) if e.max is not None else F.lit(False)
        return cols[0].isNotNull() & (below | above)
    if e.rule == "regex":
        return cols[0].isNotNull() & ~cols[0].rlike(e.pattern)
    del run_date
    return None


@dataclass(frozen=True)
class RowChecks:
    """A table's row rules as one row of aggregates over its slice, not yet computed."""

    table: str
    aggregates: DataFrame  # one row: _rows, then _f{i}, _lo{i}, _hi{i}, _latest{i}, _stale{i}
    plan: tuple[tuple[int, Expectation], ...]


def row_checks(
    df: DataFrame,
    table: str,
    expectations: list[Expectation],
    *,
    run_date: date,
    references: Mapping[str, DataFrame] | None = None,
) -> RowChecks:
    """All row rules of ``table`` as aggregates of one pass over ``df``.

    ``references`` holds the table each ``referential`` rule names (its ``to_table``); such a
    rule joins ``df`` with that table's distinct keys (one match at most per row, so no row is
    counted twice) and counts the rows whose non-NULL key has none. One query for the slice,
    instead of a second pass over it for the orphans (#16: fewer Spark jobs per step).
    """
    aggs: list[Column] = [F.count("*").alias("_rows")]
    plan: list[tuple[int, Expectation]] = []
    for i, e in enumerate(expectations):
        if e.rule == "referential":
            if references is None or e.to_table not in references:
                raise ValueError(
                    f"{table}: referential rule on {columns_of(e)} needs the rows of "
                    f"{e.to_table}: pass them in references"
                )
            column, ref_column = _columns(e)[0], e.to_column or _columns(e)[0]
            keys = references[e.to_table].select(F.col(ref_column).alias(f"_ref{i}")).distinct()
            df = df.join(keys, F.col(column) == F.col(f"_ref{i}"), "left")
            fail = F.col(column).isNotNull() & F.col(f"_ref{i}").isNull()
            shown = F.col(column).cast("string")
        else:
            fail = _failing(e, run_date)
            shown = F.concat_ws("|", *[F.col(c).cast("string") for c in _columns(e)])
        if fail is not None:
            aggs += [
                F.sum(fail.cast("long")).alias(f"_f{i}"),
                F.min(F.when(fail, shown)).alias(f"_lo{i}"),
                F.max(F.when(fail, shown)).alias(f"_hi{i}"),
            ]
        elif e.rule == "unique":
            key = F.struct(*_columns(e))
            aggs.append((F.count(key) - F.count_distinct(key)).alias(f"_f{i}"))
        elif e.rule == "freshness":
            latest = F.max(_columns(e)[0])
            limit = F.lit(run_date - timedelta(days=e.max_age_days))
            aggs += [
                latest.cast("string").alias(f"_latest{i}"),
                F.coalesce(latest < limit, F.lit(True)).alias(f"_stale{i}"),
            ]
        else:
            continue
        plan.append((i, e))
    return RowChecks(table, df.agg(*aggs), tuple(plan))


def evaluate_tables(checks: Sequence[RowChecks], *, run_date: date) -> dict[str, list[RuleResult]]:
    """Every table's row rules in one Spark query: each table's row of aggregates, as JSON,
    in one union, so the tables' scans run side by side and one result comes back (#16: one
    query for the gate's tables, not one each). One row per table reaches the driver."""
    if not checks:
        return {}
    packed = [
        c.aggregates.select(F.lit(n).alias("_check"), F.to_json(F.struct("*")).alias("_row"))
        for n, c in enumerate(checks)
    ]
    rows = reduce(DataFrame.unionByName, packed).collect()  # one row per table
    by_check = {int(r["_check"]): json.loads(r["_row"]) for r in rows}
    return {c.table: _results(c, by_check[n], run_date) for n, c in enumerate(checks)}


def evaluate_rows(
    df: DataFrame,
    table: str,
    expectations: list[Expectation],
    *,
    run_date: date,
    references: Mapping[str, DataFrame] | None = None,
) -> list[RuleResult]:
    """All row rules of one table (``row_checks``), evaluated."""
    checks = row_checks(df, table, expectations, run_date=run_date, references=references)
    return evaluate_tables([checks], run_date=run_date)[table]


def _results(checks: RowChecks, row: Mapping[str, Any], run_date: date) -> list[RuleResult]:
    """The rule results of one table's row of aggregates (JSON leaves NULLs out: absent)."""
    rows = int(row["_rows"])
    results = []
    for i, e in checks.plan:
        cols = ",".join(_columns(e))
        if e.rule == "freshness":
            latest = row.get(f"_latest{i}")
            limit = run_date - timedelta(days=e.max_age_days)
            results.append(
                RuleResult(
                    checks.table,
                    e.rule,
                    cols,
                    e.severity,
                    rows,
                    int(bool(row[f"_stale{i}"])),
                    str(latest),
                    f"latest {latest}, needed >= {limit}",
                )
            )
            continue
        failed = int(row.get(f"_f{i}") or 0)
        sample = None
        if failed and f"_lo{i}" in row:
            sample = ", ".join(sorted({str(row[f"_lo{i}"]), str(row[f"_hi{i}"])}))
        detail = f"against {e.to_table}.{e.to_column or cols}" if e.rule == "referential" else ""
        results.append(
            RuleResult(checks.table, e.rule, cols, e.severity, rows, failed, sample, detail)
        )
    return results


def evaluate_volume(
    rows: int, table: str, e: Expectation, previous_counts: list[int]
) -> RuleResult:
    """Row count against the trailing average of earlier runs (passes without history)."""
    if not previous_counts:
        return RuleResult(table, e.rule, "", e.severity, rows, 0, None, "no history yet")
    average = sum(previous_counts) / len(previous_counts)
    ratio = rows / average if average else float("inf")
    bad = not (e.min_ratio <= ratio <= (e.max_ratio or float("inf")))
    return RuleResult(
        table,
        e.rule,
        "",
        e.severity,
        rows,
        int(bad),
        None,
        f"{rows} rows vs trailing average {average:.1f} (ratio {ratio:.2f})",
    )


def results_frame(spark: SparkSession, results: list[RuleResult], run_date: date) -> DataFrame:
    rows: list[dict[str, Any]] = [
        {
            "run_date": run_date,
            "table": r.table,
            "rule": r.rule,
            "columns": r.columns,
            "severity": r.severity,
            "rows_checked": r.rows_checked,
            "rows_failed": r.rows_failed,
            "sample_failing": r.sample_failing,
            "passed": r.passed,
            "detail": r.detail,
        }
        for r in results
    ]
    return spark.createDataFrame(rows, RESULT_SCHEMA)
