"""The DataFrame helpers every layer shares: projection, a cache always released, run windows."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.frames import RunWindow, cached, project


def test_project_casts_names_and_orders_onto_a_schema(spark: SparkSession) -> None:
    schema = T.StructType(
        [T.StructField("b", T.LongType()), T.StructField("a", T.StringType()),
         T.StructField("c", T.DateType())]
    )  # fmt: skip
    df = spark.createDataFrame([("1", 2)], "a string, x int")
    out = project(df, schema, {"b": F.col("x") * 10}, otherwise=lambda _n: F.lit(None))
    assert out.schema == schema and out.first().asDict() == {"b": 20, "a": None, "c": None}
    # Without a fallback a field comes from the frame itself, so a missing one is named.
    assert project(df, T.StructType([schema["a"]])).first().asDict() == {"a": "1"}
    with pytest.raises(AnalysisException, match="`c`"):
        project(df, schema, {"b": F.col("x")})


def test_a_cache_is_released_when_its_block_fails(spark: SparkSession) -> None:
    df = spark.range(3)
    with pytest.raises(RuntimeError), cached(df) as kept:
        assert kept.is_cached
        raise RuntimeError("the step failed")
    assert not kept.is_cached


def test_a_run_window_is_one_condition_in_two_spellings(spark: SparkSession) -> None:
    window = RunWindow.ending(date(2026, 11, 24), lookback_days=3)
    assert window.bounds() == ["2026-11-21", "2026-11-24"]
    assert window.widened(before=1, after=1).bounds() == ["2026-11-20", "2026-11-25"]
    days = spark.createDataFrame([(date(2026, 11, d),) for d in range(19, 27)], "d date")
    as_column = {r["d"].day for r in days.where(window.contains("d")).collect()}
    as_sql = {r["d"].day for r in days.where(window.predicate("d")).collect()}
    assert as_column == as_sql == {21, 22, 23, 24}
