"""The JSON-lines web event contract and the bronze schemas derived from it."""

from __future__ import annotations

from pyspark.sql import types as T

REQUIRED_FIELDS = ("event_id", "event_ts", "cookie_id", "event_type", "url")

PAGE_SCHEMA = T.StructType(
    [
        T.StructField("fund_ticker", T.StringType()),
        T.StructField("asset_class", T.StringType()),
        T.StructField("topic", T.StringType()),
    ]
)
PROPERTIES_SCHEMA = T.MapType(T.StringType(), T.StringType())

# First pass: every top-level field as text, so type errors become reasons, not nulls.
RAW_FIELDS = (
    "event_id",
    "event_ts",
    "cookie_id",
    "user_id",
    "event_type",
    "url",
    "referrer",
    "user_agent",
    "ip",
    "page",
    "properties",
)
CORRUPT_COLUMN = "_corrupt_record"
RAW_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in RAW_FIELDS]
    + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)

BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("cookie_id", T.StringType(), False),
        T.StructField("user_id", T.StringType()),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("url", T.StringType(), False),
        T.StructField("referrer", T.StringType()),
        T.StructField("user_agent", T.StringType()),
        T.StructField("ip", T.StringType()),
        T.StructField("page", PAGE_SCHEMA),
        T.StructField("properties", PROPERTIES_SCHEMA),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)
