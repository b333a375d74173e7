"""Source ``web``: our own tracker's events, JSON lines under ``<landing>/clickstream/``.

Raw lines -> validated bronze events or quarantine rows, and bronze rows -> canonical events
(pure transformations).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.config import SourceConfig
from decisionlake.io.ingest import valid_to_bronze
from decisionlake.sources import Events, Source, event_ingest
from decisionlake.sources.canonical import event_basics, select_canonical
from decisionlake.sources.lines import first_failing, line_rules
from decisionlake.sources.web_contract import (
    BRONZE_SCHEMA,
    CORRUPT_COLUMN,
    PAGE_SCHEMA,
    PROPERTIES_SCHEMA,
    RAW_SCHEMA,
    REQUIRED_FIELDS,
)

NAME = "web"
VISITOR_COLUMN = "cookie_id"
EVENT_TYPES = (
    "page_view",
    "page_ping",
    "click",
    "search",
    "document_download",
    "video_play",
    "form_submit",
    "login",
)


def _is_blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def _is_json_object(col: Column) -> Column:
    return F.trim(col).startswith("{")


def epoch_ms_to_timestamp(col: Column) -> Column:
    """Epoch milliseconds (bigint) -> TIMESTAMP (UTC)."""
    return F.timestamp_millis(col)


def rejection_reason(
    raw: Column,
    parsed: Column,
    ts_ms: Column,
    *,
    ingest_date: date,
    limits: SourceConfig,
) -> Column:
    """The first rule a line breaks, as a reason code, or NULL for a valid line.

    Order matters: a line is judged on bytes, then JSON, then fields, then types, then time.
    """
    earliest_ms = _epoch_ms(date.fromisoformat(limits.min_event_date))
    latest_ms = _epoch_ms(ingest_date + timedelta(days=1)) + limits.max_future_skew_minutes * 60_000
    oldest_allowed_ms = _epoch_ms(ingest_date - timedelta(days=limits.max_late_days))
    rules = line_rules(raw, parsed, CORRUPT_COLUMN, max_line_bytes=limits.max_line_bytes)
    rules += [(_is_blank(parsed[name]), f"MISSING_{name.upper()}") for name in REQUIRED_FIELDS]
    rules += [
        (ts_ms.isNull(), "BAD_TYPE_EVENT_TS"),
        # Nested fields arrive as raw JSON text in the first pass: they must be objects.
        (parsed["page"].isNotNull() & ~_is_json_object(parsed["page"]), "BAD_TYPE_PAGE"),
        (
            parsed["properties"].isNotNull() & ~_is_json_object(parsed["properties"]),
            "BAD_TYPE_PROPERTIES",
        ),
        (~parsed["event_type"].isin(*(limits.event_types or EVENT_TYPES)), "UNKNOWN_EVENT_TYPE"),
        ((ts_ms < earliest_ms) | (ts_ms > latest_ms), "IMPOSSIBLE_TIMESTAMP"),
        (ts_ms < oldest_allowed_ms, "TOO_LATE"),
    ]
    return first_failing(rules)


def _epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86_400_000


def validate_events(
    raw: DataFrame, *, ingest_date: date, limits: SourceConfig | None = None
) -> DataFrame:
    """Parse raw lines (``value``, ``source_file``) and attach ``reason`` (NULL when valid).

    The output keeps the raw line beside the typed columns (``_p``), plus ``_key`` (the event
    id of valid lines), so either side can be selected.
    """
    limits = limits or SourceConfig()
    parsed = F.from_json(F.col("value"), RAW_SCHEMA, {"columnNameOfCorruptRecord": CORRUPT_COLUMN})
    # The contract's type is a JSON number: a second, typed parse of the field tells
    # 1795503669320 from "1795503669320" (the text parse reads both as the same string).
    ts_ms = F.when(
        ~_is_blank(F.col("_p.event_ts")),
        F.from_json(F.col("value"), "event_ts bigint")["event_ts"],
    )
    # ``_ts_ms`` is a column of its own before the rules read it four times: passed as an
    # expression, each rule would parse the line again (a CASE WHEN's later conditions share no
    # subexpressions), which cost more than all the other rules together.
    return (
        raw.withColumn("_p", F.when(F.is_valid_utf8("value"), parsed))
        .withColumn("_ts_ms", ts_ms)
        .withColumn(
            "reason",
            rejection_reason(
                F.col("value"),
                F.col("_p"),
                F.col("_ts_ms"),
                ingest_date=ingest_date,
                limits=limits,
            ),
        )
        .withColumn("_key", F.when(F.col("reason").isNull(), F.trim(F.col("_p.event_id"))))
    )


def event_date_of_valid_line() -> Column:
    """The bronze ``event_date`` of a validated line (the column bronze is partitioned by)."""
    return F.to_date(epoch_ms_to_timestamp(F.col("_ts_ms")))


def to_bronze_events(validated: DataFrame, **lineage: Any) -> DataFrame:
    """Valid lines as canonical bronze events (schema :data:`BRONZE_SCHEMA`)."""
    ts = epoch_ms_to_timestamp(F.col("_ts_ms"))
    p = F.col("_p")
    columns = {
        "event_id": F.trim(p["event_id"]),
        "event_ts": ts,
        "event_date": event_date_of_valid_line(),
        "cookie_id": p["cookie_id"],
        "user_id": F.when(~_is_blank(p["user_id"]), p["user_id"]),
        "event_type": p["event_type"],
        "url": p["url"],
        "referrer": F.when(~_is_blank(p["referrer"]), p["referrer"]),
        "user_agent": p["user_agent"],
        "ip": p["ip"],
        "page": F.from_json(p["page"], PAGE_SCHEMA),
        "properties": F.from_json(p["properties"], PROPERTIES_SCHEMA),
    }
    return valid_to_bronze(validated, BRONZE_SCHEMA, columns, **lineage)


def to_canonical(bronze: DataFrame) -> DataFrame:
    """Map bronze.clickstream rows to canonical events."""
    return select_canonical(
        bronze,
        {
            **event_basics(NAME, VISITOR_COLUMN),
            "user_id": F.col("user_id"),
            "event_type": F.col("event_type"),
            "url": F.col("url"),
            "referrer": F.col("referrer"),
            "user_agent": F.col("user_agent"),
            "ip": F.col("ip"),
            "fund_ticker": F.col("page.fund_ticker"),
            "asset_class": F.col("page.asset_class"),
            "topic": F.col("page.topic"),
            "properties": F.col("properties"),
        },
    )


SOURCE = Source(
    ingest=event_ingest(
        "clickstream",
        bronze_schema=BRONZE_SCHEMA,
        validate=validate_events,
        to_bronze=to_bronze_events,
        partition_of_valid_line=event_date_of_valid_line,
    ),
    # The tracker sends a heartbeat while a page stays open: no_page_pings applies.
    events=Events(to_canonical, visitor_column=VISITOR_COLUMN, page_pings=True),
)
