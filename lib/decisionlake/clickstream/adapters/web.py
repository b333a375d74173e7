"""Our own web tracker's events (bronze.clickstream) -> canonical events."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.adapters import select_canonical

SOURCE = "web"
BRONZE_TABLE = "bronze.clickstream"
VISITOR_COLUMN = "cookie_id"
PAGE_PINGS = True  # the tracker sends a heartbeat while a page stays open


def to_canonical(bronze: DataFrame) -> DataFrame:
    """Map bronze.clickstream rows to canonical events."""
    return select_canonical(
        bronze,
        {
            "source": F.lit(SOURCE),
            "event_id": F.col("event_id"),
            "event_ts": F.col("event_ts"),
            "event_date": F.col("event_date"),
            "visitor_id": F.col(VISITOR_COLUMN),
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
            "ingest_date": F.col("ingest_date"),
        },
    )
