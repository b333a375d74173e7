"""Warehouse DDL from a Spark schema: explicit types, lengths from the data, safe evolution."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import Column as Column_
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


class SchemaEvolutionError(ValueError):
    """The target table cannot take the data without a breaking change."""


@dataclass(frozen=True)
class Column:
    """One warehouse column."""

    name: str
    type: str
    nullable: bool = True

    def sql(self) -> str:
        return f"{quote(self.name)} {self.type}{'' if self.nullable else ' NOT NULL'}"


def quote(identifier: str) -> str:
    """A double-quoted identifier (both dialects)."""
    return '"' + identifier.replace('"', '""') + '"'


def qualified(table: str) -> str:
    return ".".join(quote(part) for part in table.split("."))


def is_nested(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.ArrayType | T.MapType | T.StructType)


def length_aggs(df: DataFrame, *, prefix: str = "") -> list[Column_]:
    """max(octet_length) of every string and JSON-staged nested column, aliased prefix + name."""
    return [
        F.max(
            F.octet_length(F.to_json(F.col(f.name)) if is_nested(f.dataType) else F.col(f.name))
        ).alias(prefix + f.name)
        for f in df.schema
        if isinstance(f.dataType, T.StringType) or is_nested(f.dataType)
    ]


def string_lengths(df: DataFrame) -> dict[str, int]:
    """Longest value in bytes of every string (and JSON-staged nested) column; one pass."""
    measured = length_aggs(df)
    if not measured:
        return {}
    row = df.agg(*measured).first()  # one row
    return {k: int(v or 0) for k, v in row.asDict().items()}


def varchar_length(longest: int, *, headroom: float, minimum: int) -> int:
    """Room to grow, rounded up to a multiple of 16, capped at Redshift's 65535 bytes."""
    wanted = max(minimum, math.ceil(longest * headroom))
    return min(65535, int(math.ceil(wanted / 16) * 16))


def warehouse_type(
    data_type: T.DataType, *, dialect: str, longest: int = 0, headroom: float, minimum: int
) -> str:
    """The warehouse type for a Spark type (``dialect``: ``redshift`` or ``postgres``)."""
    if isinstance(data_type, T.StringType):
        return f"VARCHAR({varchar_length(longest, headroom=headroom, minimum=minimum)})"
    if isinstance(data_type, T.DecimalType):
        return f"DECIMAL({data_type.precision},{data_type.scale})"
    simple = {
        T.BooleanType: "BOOLEAN",
        T.ByteType: "SMALLINT",
        T.ShortType: "SMALLINT",
        T.IntegerType: "INTEGER",
        T.LongType: "BIGINT",
        T.FloatType: "REAL",
        T.DoubleType: "DOUBLE PRECISION",
        T.DateType: "DATE",
        T.TimestampType: "TIMESTAMPTZ",  # an instant: Spark stores UTC
        T.TimestampNTZType: "TIMESTAMP",  # a wall-clock time without zone
    }
    for spark_type, sql in simple.items():
        if isinstance(data_type, spark_type):
            return sql
    if isinstance(data_type, T.BinaryType):
        return "VARBYTE" if dialect == "redshift" else "BYTEA"
    if is_nested(data_type):
        return "SUPER" if dialect == "redshift" else "JSONB"
    raise SchemaEvolutionError(f"no warehouse type for Spark type {data_type.simpleString()}")


def columns_for(
    schema: T.StructType,
    lengths: dict[str, int],
    *,
    dialect: str,
    keys: list[str],
    headroom: float,
    minimum: int,
) -> list[Column]:
    """Warehouse columns for a Spark schema; keys are NOT NULL."""
    return [
        Column(
            f.name,
            warehouse_type(
                f.dataType,
                dialect=dialect,
                longest=lengths.get(f.name, 0),
                headroom=headroom,
                minimum=minimum,
            ),
            nullable=f.name not in keys,
        )
        for f in schema
    ]


def create_table(
    table: str,
    columns: list[Column],
    *,
    dialect: str,
    distkey: str = "",
    sortkey=(),
    partition_by: str = "",
) -> str:
    """CREATE TABLE IF NOT EXISTS, with DISTKEY/SORTKEY on Redshift.

    ``partition_by`` (PostgreSQL): LIST-partitioned by that column, one partition per slice.
    """
    body = ",\n  ".join(c.sql() for c in columns)
    sql = f"CREATE TABLE IF NOT EXISTS {qualified(table)} (\n  {body}\n)"
    if dialect == "postgres" and partition_by:
        sql += f" PARTITION BY LIST ({quote(partition_by)})"
    if dialect == "redshift":
        if distkey:
            sql += f" DISTSTYLE KEY DISTKEY ({quote(distkey)})"
        if sortkey:
            sql += f" COMPOUND SORTKEY ({', '.join(quote(c) for c in sortkey)})"
    return sql


def _base(sql_type: str) -> str:
    return sql_type.split("(")[0].strip().upper()


def _length(sql_type: str) -> int | None:
    if "(" not in sql_type or _base(sql_type) not in ("VARCHAR", "CHARACTER VARYING"):
        return None
    return int(sql_type.split("(")[1].split(")")[0])


_SAME = {
    "CHARACTER VARYING": "VARCHAR",
    "NUMERIC": "DECIMAL",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT8": "DOUBLE PRECISION",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "INT": "INTEGER",
    "BOOL": "BOOLEAN",
}


def evolution(
    table: str, existing: dict[str, str], wanted: list[Column], *, longest: dict[str, int]
) -> list[str]:
    """ALTER statements that make ``existing`` accept ``wanted`` (additive only).

    New columns are added as nullable; a VARCHAR too short for the data is refused with the
    column and lengths named (widening is a decision, not a side effect); any other type
    change or a dropped column is refused.
    """
    statements: list[str] = []
    names = {c.name for c in wanted}
    dropped = sorted(set(existing) - names)
    if dropped:
        raise SchemaEvolutionError(
            f"{table}: the data lacks column(s) {', '.join(dropped)} the table has; "
            "dropping columns is not automatic"
        )
    for column in wanted:
        current = existing.get(column.name)
        if current is None:
            statements.append(
                f"ALTER TABLE {qualified(table)} ADD COLUMN {quote(column.name)} {column.type}"
            )
            continue
        have = _SAME.get(_base(current), _base(current))
        want = _SAME.get(_base(column.type), _base(column.type))
        if have != want:
            raise SchemaEvolutionError(
                f"{table}.{column.name}: is {current}, the data needs {column.type}; "
                "incompatible type change refused"
            )
        limit = _length(current)
        if limit is not None and longest.get(column.name, 0) > limit:
            raise SchemaEvolutionError(
                f"{table}.{column.name}: values up to {longest[column.name]} bytes do not fit "
                f"{current}"
            )
    return statements
