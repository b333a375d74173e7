"""The same row count and checksums, computed by Spark on the staged data and by the warehouse
on the target slice after the load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.warehouse.ddl import qualified, quote


@dataclass(frozen=True)
class Totals:
    """Rows, a key checksum (sum of 32-bit MD5 prefixes) and a rounded sum of a value column."""

    rows: int
    key_checksum: int
    value_sum: float

    def matches(self, other: Totals, *, tolerance: float = 1e-3) -> bool:
        return (
            self.rows == other.rows
            and self.key_checksum == other.key_checksum
            and abs(self.value_sum - other.value_sum) <= tolerance * max(1.0, abs(self.value_sum))
        )


def totals_aggs(*, keys: list[str], value: str) -> list[Column]:
    """Aggregate expressions of :class:`Totals` (aliased ``_t_rows``, ``_t_keys``, ``_t_value``)."""
    joined = F.concat_ws("|", *[F.col(k).cast("string") for k in keys])
    key_hash = F.conv(F.substring(F.md5(joined), 1, 8), 16, 10).cast("long")
    return [
        F.count("*").alias("_t_rows"),
        F.coalesce(F.sum(key_hash), F.lit(0)).alias("_t_keys"),
        F.coalesce(F.sum(F.round(F.col(value).cast("double"), 6)), F.lit(0.0)).alias("_t_value"),
    ]


def totals_from(row: Any) -> Totals:
    return Totals(int(row["_t_rows"]), int(row["_t_keys"]), float(row["_t_value"]))


def spark_totals(df: DataFrame, *, keys: list[str], value: str) -> Totals:
    """Totals of a DataFrame in one aggregate."""
    return totals_from(df.agg(*totals_aggs(keys=keys, value=value)).first())  # one row


def totals_sql(
    table: str, *, keys: list[str], value: str, slice_column: str, slices: list[str], dialect: str
) -> str:
    """SELECT rows, key checksum, value sum of the target slice (same definitions as Spark)."""
    joined = "CONCAT_WS('|', " + ", ".join(f"{quote(k)}::text" for k in keys) + ")"
    if dialect == "redshift":
        # Redshift's CONCAT_WS is not available; || with NVL keeps NULL-free keys identical.
        joined = " || '|' || ".join(f"{quote(k)}::VARCHAR" for k in keys)
        key_hash = f"STRTOL(SUBSTRING(MD5({joined}), 1, 8), 16)"
    else:
        key_hash = f"('x' || SUBSTR(MD5({joined}), 1, 8))::BIT(32)::BIGINT"
    in_slice = ", ".join("'" + s.replace("'", "''") + "'" for s in slices)
    return (
        f"SELECT COUNT(*), COALESCE(SUM({key_hash}), 0), "
        f"COALESCE(SUM(ROUND({quote(value)}::NUMERIC(38, 10), 6)), 0) "
        f"FROM {qualified(table)} WHERE {quote(slice_column)}::VARCHAR IN ({in_slice})"
    )
