"""Sessionization, page views with engaged time, and session summaries (pure transforms).

Rules (the Snowplow web model's, made explicit):
- a visitor's events are ordered by (event_ts, event_id); a gap *longer* than the timeout
  starts a new session (a gap of exactly the timeout does not); a session belongs to the date
  it starts on, whatever midnight it crosses;
- session ids hash (source, visitor, start time, first event id): the same events always give
  the same id, however the data was partitioned or in which run it was computed;
- a page view's engaged time is ``heartbeat * (distinct ping buckets - 1) + min_visit`` when it
  had pings (plus any engagement time the source measured itself, as GA4 does), capped by the
  time until the next page view or the end of the session.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

_MICROS = 1_000_000

# What page views and session summaries read of an event: sessionizing only these keeps the
# long strings (user agent, referrer, properties) out of the sort and the cache (#16: the
# events' width, not their number, made the sessions' shuffles slow).
SESSION_INPUT_COLUMNS = (
    "source",
    "visitor_id",
    "user_id",
    "event_id",
    "event_ts",
    "event_type",
    "url",
    "url_path",
    "page_title",
    "fund_ticker",
    "asset_class",
    "topic",
    "engagement_msec",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer_class",
    "device_class",
    "browser",
    "os",
)


def _seconds_between(later: Column, earlier: Column) -> Column:
    return (F.unix_micros(later) - F.unix_micros(earlier)) / _MICROS


def assign_sessions(events: DataFrame, *, timeout_minutes: int) -> DataFrame:
    """Add ``session_id``, ``session_start`` and ``session_date`` to each event.

    Repeated deliveries of an event (same ``event_id`` and time) are dropped.
    """
    ordered = Window.partitionBy("source", "visitor_id").orderBy("event_ts", "event_id")
    running = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    previous = F.lag("event_ts").over(ordered)
    starts = previous.isNull() | (
        _seconds_between(F.col("event_ts"), previous) > timeout_minutes * 60
    )
    # Copies of one event sort next to each other: drop them in the same sorted pass.
    repeated = F.lag("event_id").over(ordered) == F.col("event_id")
    return (
        events.withColumn("_repeated", F.coalesce(repeated, F.lit(False)))
        .where(~F.col("_repeated"))
        .drop("_repeated")
        .withColumn("_starts", starts)
        .withColumn(
            "session_start", F.last(F.when(F.col("_starts"), F.col("event_ts")), True).over(running)
        )
        .withColumn(
            "_first_event", F.last(F.when(F.col("_starts"), F.col("event_id")), True).over(running)
        )
        .withColumn(
            "session_id",
            F.sha2(
                F.concat_ws(
                    "|",
                    "source",
                    "visitor_id",
                    F.unix_micros("session_start").cast("string"),
                    "_first_event",
                ),
                256,
            ).substr(1, 32),
        )
        .withColumn("session_date", F.to_date("session_start"))
        .drop("_starts", "_first_event")
    )


def build_page_views(
    sessionized: DataFrame, *, heartbeat_seconds: int, min_visit_seconds: int
) -> DataFrame:
    """One row per page view with engaged seconds and time to the next page view."""
    in_session = Window.partitionBy("session_id").orderBy("event_ts", "event_id")
    running = in_session.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    is_view = F.col("event_type") == "page_view"
    attributed = (
        sessionized.withColumn(
            "page_view_id", F.last(F.when(is_view, F.col("event_id")), True).over(running)
        )
        .withColumn("page_view_ts", F.last(F.when(is_view, F.col("event_ts")), True).over(running))
        .withColumn("_session_end", F.max("event_ts").over(Window.partitionBy("session_id")))
        .where(F.col("page_view_id").isNotNull())
    )
    bucket = F.floor(_seconds_between(F.col("event_ts"), F.col("page_view_ts")) / heartbeat_seconds)
    own = F.col("event_id") == F.col("page_view_id")
    views = attributed.groupBy("session_id", "page_view_id").agg(
        F.max("source").alias("source"),
        F.max("visitor_id").alias("visitor_id"),
        F.max("user_id").alias("user_id"),
        F.max("session_date").alias("session_date"),
        F.max("page_view_ts").alias("page_view_ts"),
        F.max("_session_end").alias("_session_end"),
        *[
            F.max(F.when(own, F.col(c))).alias(c)
            for c in ("url", "url_path", "page_title", "fund_ticker", "asset_class", "topic")
        ],
        F.count_distinct(F.when(F.col("event_type") == "page_ping", bucket)).alias("ping_buckets"),
        F.coalesce(F.sum("engagement_msec"), F.lit(0)).alias("_engagement_ms"),
        F.count("*").alias("events"),
    )
    next_view = F.lead("page_view_ts").over(
        Window.partitionBy("session_id").orderBy("page_view_ts", "page_view_id")
    )
    from_pings = F.when(
        F.col("ping_buckets") > 0,
        heartbeat_seconds * (F.col("ping_buckets") - 1) + min_visit_seconds,
    ).otherwise(0)
    return (
        views.withColumn("_next", next_view)
        .withColumn("time_to_next_s", _seconds_between(F.col("_next"), F.col("page_view_ts")))
        .withColumn(
            "engaged_s",
            F.least(
                (from_pings + F.col("_engagement_ms") / 1000).cast("double"),
                _seconds_between(
                    F.coalesce(F.col("_next"), F.col("_session_end")), F.col("page_view_ts")
                ),
            ),
        )
        .withColumn("is_exit", F.col("_next").isNull())
        .withColumn("page_view_date", F.to_date("page_view_ts"))
        .select(
            "page_view_id",
            "session_id",
            "session_date",
            "source",
            "visitor_id",
            "user_id",
            "page_view_ts",
            "page_view_date",
            "url",
            "url_path",
            "page_title",
            "fund_ticker",
            "asset_class",
            "topic",
            "events",
            "ping_buckets",
            "engaged_s",
            "time_to_next_s",
            "is_exit",
        )
    )


def build_sessions(sessionized: DataFrame, page_views: DataFrame) -> DataFrame:
    """One row per session."""
    order = F.struct("event_ts", "event_id")
    is_view = F.col("event_type") == "page_view"

    def count_of(event_type: str) -> Column:
        return F.sum((F.col("event_type") == event_type).cast("int"))

    def first(c: str) -> Column:
        return F.min_by(c, order).alias(c)

    sessions = sessionized.groupBy("session_id").agg(
        F.max("source").alias("source"),
        F.max("visitor_id").alias("visitor_id"),
        F.max("user_id").alias("user_id"),
        F.min("event_ts").alias("session_start"),
        F.max("event_ts").alias("session_end"),
        F.count("*").alias("events"),
        F.sum(is_view.cast("int")).alias("page_views"),
        F.min_by("url", F.when(is_view, order)).alias("landing_page"),
        F.max_by("url", F.when(is_view, order)).alias("exit_page"),
        *[first(c) for c in ("utm_source", "utm_medium", "utm_campaign", "referrer_class")],
        *[first(c) for c in ("device_class", "browser", "os")],
        count_of("document_download").alias("downloads"),
        count_of("form_submit").alias("form_submits"),
        count_of("login").alias("logins"),
    )
    engaged = page_views.groupBy("session_id").agg(F.sum("engaged_s").alias("engaged_s"))
    return (
        sessions.join(engaged, "session_id", "left")
        .withColumn("engaged_s", F.coalesce("engaged_s", F.lit(0.0)))
        .withColumn("session_date", F.to_date("session_start"))
        .withColumn("duration_s", _seconds_between(F.col("session_end"), F.col("session_start")))
        .withColumn("converted", (F.col("downloads") > 0) | (F.col("form_submits") > 0))
        .select(
            "session_id",
            "session_date",
            "source",
            "visitor_id",
            "user_id",
            "session_start",
            "session_end",
            "duration_s",
            "events",
            "page_views",
            "engaged_s",
            "landing_page",
            "exit_page",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "referrer_class",
            "device_class",
            "browser",
            "os",
            "downloads",
            "form_submits",
            "logins",
            "converted",
        )
    )
