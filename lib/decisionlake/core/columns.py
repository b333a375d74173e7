"""Small column helpers every layer shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def project(
    df: DataFrame,
    schema: T.StructType,
    columns: Mapping[str, Column] | None = None,
    *,
    otherwise: Callable[[str], Column] = F.col,
) -> DataFrame:
    """``df`` as exactly ``schema``'s fields, in order, each cast to its type and named: the
    expression ``columns[name]`` where one is given, else ``otherwise(name)`` (by default
    ``df``'s own column of that name, so a missing one fails at analysis, naming it)."""
    given = columns or {}
    return df.select(
        *[
            (given[f.name] if f.name in given else otherwise(f.name)).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )
