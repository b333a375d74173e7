"""GA4 BigQuery export rows (bronze.ga4_events) -> canonical events."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.adapters import select_canonical
from decisionlake.sources.ga4_export import ga4_param

SOURCE = "ga4"
BRONZE_TABLE = "bronze.ga4_events"
VISITOR_COLUMN = "user_pseudo_id"

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


def _not_set(col: F.Column) -> F.Column:
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
            "source": F.lit(SOURCE),
            "event_id": F.col("event_id"),
            "event_ts": F.col("event_ts"),
            "event_date": F.col("event_date"),
            "visitor_id": F.col(VISITOR_COLUMN),
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
                session_id.isNotNull(), F.concat_ws(":", F.col("user_pseudo_id"), session_id)
            ),
            "engagement_msec": ga4_param(params, "engagement_time_msec").try_cast("bigint"),
            "ingest_date": F.col("ingest_date"),
        },
    )
