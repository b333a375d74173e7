"""Source ``ga4``: a Google Analytics 4 BigQuery export (newline-delimited JSON) under
``<landing>/ga4/`` -> bronze.ga4_events, and its rows -> canonical events."""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import SourceConfig
from decisionlake.io.ingest import valid_to_bronze
from decisionlake.sources import Events, Source, event_ingest
from decisionlake.sources.canonical import event_basics, select_canonical
from decisionlake.sources.lines import first_failing, line_rules, parse_json_lines

CORRUPT_COLUMN = "_corrupt_record"
REQUIRED_FIELDS = ("event_timestamp", "event_name", "user_pseudo_id")
NAME = "ga4"
VISITOR_COLUMN = "user_pseudo_id"

_S = T.StringType()
PARAM_VALUE = T.StructType(
    [
        T.StructField("string_value", _S),
        T.StructField("int_value", T.LongType()),
        T.StructField("float_value", T.DoubleType()),
        T.StructField("double_value", T.DoubleType()),
    ]
)
EVENT_PARAMS = T.ArrayType(
    T.StructType([T.StructField("key", _S), T.StructField("value", PARAM_VALUE)])
)
DEVICE = T.StructType(
    [
        T.StructField(n, _S)
        for n in (
            "category",
            "mobile_brand_name",
            "mobile_model_name",
            "operating_system",
            "operating_system_version",
            "language",
        )
    ]
    + [
        T.StructField(
            "web_info",
            T.StructType([T.StructField("browser", _S), T.StructField("browser_version", _S)]),
        )
    ]
)
GEO = T.StructType(
    [T.StructField(n, _S) for n in ("continent", "sub_continent", "country", "region", "city")]
)
TRAFFIC_SOURCE = T.StructType([T.StructField(n, _S) for n in ("medium", "name", "source")])

# Scalars as text so a wrong type becomes a reason; nested parts typed as exported.
RAW_SCHEMA = T.StructType(
    [
        T.StructField("event_date", _S),
        T.StructField("event_timestamp", _S),
        T.StructField("event_name", _S),
        T.StructField("event_params", EVENT_PARAMS),
        T.StructField("event_bundle_sequence_id", _S),
        T.StructField("user_id", _S),
        T.StructField("user_pseudo_id", _S),
        T.StructField("device", DEVICE),
        T.StructField("geo", GEO),
        T.StructField("traffic_source", TRAFFIC_SOURCE),
        T.StructField("stream_id", _S),
        T.StructField("platform", _S),
        T.StructField(CORRUPT_COLUMN, _S),
    ]
)

BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("event_id", _S, False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("export_date", T.DateType()),
        T.StructField("event_name", _S, False),
        T.StructField("user_id", _S),
        T.StructField("user_pseudo_id", _S, False),
        T.StructField("event_bundle_sequence_id", _S),
        T.StructField("event_params", EVENT_PARAMS),
        T.StructField("device", DEVICE),
        T.StructField("geo", GEO),
        T.StructField("traffic_source", TRAFFIC_SOURCE),
        T.StructField("stream_id", _S),
        T.StructField("platform", _S),
        T.StructField("source_file", _S, False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", _S, False),
    ]
)


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def ga4_event_id(parsed: Column) -> Column:
    """GA4 rows have no id: hash what identifies an event (a re-export hashes the same)."""
    return F.sha2(
        F.concat_ws(
            "|",
            parsed["user_pseudo_id"],
            parsed["event_timestamp"],
            parsed["event_name"],
            F.coalesce(parsed["event_bundle_sequence_id"], F.lit("")),
            F.coalesce(F.to_json(parsed["event_params"]), F.lit("")),
        ),
        256,
    ).substr(1, 32)


def validate_ga4(raw: DataFrame, *, ingest_date: date, limits: SourceConfig) -> DataFrame:
    """Parse GA4 export lines and attach ``reason`` (NULL when valid) and ``_key``."""
    del ingest_date  # exports are backfilled: any past date is legitimate
    p = F.col("_p")
    ts_us = p["event_timestamp"].try_cast("bigint")
    earliest = date.fromisoformat(limits.min_event_date)
    earliest_us = (earliest - date(1970, 1, 1)).days * 86_400_000_000
    rules = line_rules(F.col("value"), p, CORRUPT_COLUMN, max_line_bytes=limits.max_line_bytes)
    rules += [(_blank(p[name]), f"MISSING_{name.upper()}") for name in REQUIRED_FIELDS]
    rules += [
        (ts_us.isNull(), "BAD_TYPE_EVENT_TIMESTAMP"),
        (
            (ts_us < earliest_us)
            | (F.timestamp_micros(ts_us) > F.current_timestamp() + F.expr("INTERVAL 1 DAY")),
            "IMPOSSIBLE_TIMESTAMP",
        ),
    ]
    return (
        parse_json_lines(raw, RAW_SCHEMA, CORRUPT_COLUMN)
        .withColumn("reason", first_failing(rules))
        .withColumn("_key", F.when(F.col("reason").isNull(), ga4_event_id(p)))
    )


def to_bronze_ga4(validated: DataFrame, **lineage: Any) -> DataFrame:
    """Valid GA4 lines in the bronze schema (``lineage``: see :func:`valid_to_bronze`)."""
    p = F.col("_p")
    ts = F.timestamp_micros(p["event_timestamp"].cast("bigint"))
    columns = {
        "event_id": F.col("_key"),
        "event_ts": ts,
        "event_date": F.to_date(ts),
        "export_date": F.try_to_date(p["event_date"], "yyyyMMdd"),
    }
    raw = set(RAW_SCHEMA.fieldNames())
    return valid_to_bronze(
        validated,
        BRONZE_SCHEMA,
        columns,
        otherwise=lambda name: p[name] if name in raw else F.lit(None),
        **lineage,
    )


def ga4_param(params: Column, key: str) -> Column:
    """One event parameter's value as text, whichever typed slot holds it."""
    value = F.get(F.filter(params, lambda p: p["key"] == key), 0)["value"]
    return F.coalesce(
        value["string_value"],
        value["int_value"].cast("string"),
        value["double_value"].cast("string"),
        value["float_value"].cast("string"),
    )


# GA4 event names -> canonical event types; others keep their GA4 name.
EVENT_TYPES = {
    "page_view": "page_view",
    "user_engagement": "engagement",
    "view_search_results": "search",
    "select_item": "click",
    "select_promotion": "click",
    "file_download": "document_download",
    "video_start": "video_play",
    "generate_lead": "form_submit",
    "login": "login",
}


def _not_set(col: Column) -> Column:
    # The export writes "(not set)" / "<Other>" where it has no value.
    return F.when(~col.isin("(not set)", "<Other>", "(none)", ""), col)


def to_canonical(bronze: DataFrame) -> DataFrame:
    """Map GA4 export rows to canonical events; parameters are read with built-ins."""
    params = F.col("event_params")
    mapping = F.create_map(*[F.lit(x) for pair in EVENT_TYPES.items() for x in pair])
    session_id = ga4_param(params, "ga_session_id")
    return select_canonical(
        bronze,
        {
            **event_basics(NAME, VISITOR_COLUMN),
            "user_id": F.col("user_id"),
            "event_type": F.coalesce(mapping[F.col("event_name")], F.col("event_name")),
            "url": ga4_param(params, "page_location"),
            "page_title": ga4_param(params, "page_title"),
            "referrer": ga4_param(params, "page_referrer"),
            "device_class_hint": F.lower(_not_set(F.col("device.category"))),
            "browser_hint": _not_set(F.col("device.web_info.browser")),
            "os_hint": _not_set(F.col("device.operating_system")),
            "utm_source_hint": _not_set(ga4_param(params, "source")),
            "utm_medium_hint": _not_set(ga4_param(params, "medium")),
            "utm_campaign_hint": _not_set(ga4_param(params, "campaign")),
            "source_session_id": F.when(
                session_id.isNotNull(), F.concat_ws(":", F.col(VISITOR_COLUMN), session_id)
            ),
            "engagement_msec": ga4_param(params, "engagement_time_msec").try_cast("bigint"),
        },
    )


SOURCE = Source(
    ingest=event_ingest(
        "ga4", bronze_schema=BRONZE_SCHEMA, validate=validate_ga4, to_bronze=to_bronze_ga4
    ),
    # GA4 measures engaged time itself (engagement_time_msec): no page pings.
    events=Events(to_canonical, visitor_column=VISITOR_COLUMN),
)
