"""The canonical event shape every event source maps its bronze rows to.

``build_sessions`` reads the bronze table of each enabled source whose module declares
``events`` (:class:`decisionlake.sources.Events`) and unions their canonical events.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.frames import project

_S = T.StringType()

CANONICAL_SCHEMA = T.StructType(
    [
        T.StructField("source", _S, False),
        T.StructField("event_id", _S, False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("visitor_id", _S, False),
        T.StructField("user_id", _S),
        T.StructField("event_type", _S, False),
        T.StructField("url", _S),
        T.StructField("page_title", _S),
        T.StructField("referrer", _S),
        T.StructField("user_agent", _S),
        T.StructField("ip", _S),
        T.StructField("device_class_hint", _S),
        T.StructField("browser_hint", _S),
        T.StructField("os_hint", _S),
        T.StructField("utm_source_hint", _S),
        T.StructField("utm_medium_hint", _S),
        T.StructField("utm_campaign_hint", _S),
        T.StructField("fund_ticker", _S),
        T.StructField("asset_class", _S),
        T.StructField("topic", _S),
        T.StructField("source_session_id", _S),
        T.StructField("engagement_msec", T.LongType()),
        T.StructField("properties", T.MapType(_S, _S)),
        T.StructField("ingest_date", T.DateType()),
    ]
)


def select_canonical(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """Project ``columns`` onto :data:`CANONICAL_SCHEMA` (absent ones become NULL), typed."""
    unknown = set(columns) - set(CANONICAL_SCHEMA.fieldNames())
    if unknown:
        raise ValueError(f"not canonical columns: {sorted(unknown)}")
    return project(df, CANONICAL_SCHEMA, columns, otherwise=lambda _name: F.lit(None))


def event_basics(source: str, visitor_column: str) -> dict[str, Column]:
    """The canonical columns every event source maps alike from its bronze table (keyed by
    ``event_id``, with ``event_ts``, ``event_date`` and ``ingest_date``: see
    :func:`decisionlake.sources.event_ingest`), ``source`` named and the visitor id taken from
    ``visitor_column``."""
    return {
        "source": F.lit(source),
        "event_id": F.col("event_id"),
        "event_ts": F.col("event_ts"),
        "event_date": F.col("event_date"),
        "visitor_id": F.col(visitor_column),
        "ingest_date": F.col("ingest_date"),
    }
