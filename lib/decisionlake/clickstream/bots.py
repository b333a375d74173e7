"""Bot filtering: known crawler user agents plus behavioural rules, per visitor-day."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.sessions import assign_sessions
from decisionlake.config import BotRulesConfig

VISITOR_DAY = ("source", "visitor_id", "event_date")


def classify_bots(
    events: DataFrame,
    *,
    rules: BotRulesConfig,
    timeout_minutes: int,
    ping_sources: Sequence[str],
) -> DataFrame:
    """Add ``bot_rule``: the first rule a visitor-day breaks (NULL for humans).

    ``ping_sources``: the sources whose trackers send page pings (their ``Events.page_pings``);
    only their visitors can break ``no_page_pings``.

    The scope is the visitor-day so that the verdict depends only on that day's events and a
    rerun over a window reproduces a from-scratch run.
    """
    per_minute = (
        events.groupBy(*VISITOR_DAY, F.date_trunc("minute", "event_ts").alias("_minute"))
        .count()
        .groupBy(*VISITOR_DAY)
        .agg(F.max("count").alias("_peak_per_minute"))
    )
    longest = (
        assign_sessions(
            events.select(*VISITOR_DAY, "event_ts", "event_id"), timeout_minutes=timeout_minutes
        )
        .groupBy(*VISITOR_DAY, "session_id")
        .agg(
            ((F.unix_micros(F.max("event_ts")) - F.unix_micros(F.min("event_ts"))) / 3.6e9).alias(
                "_hours"
            )
        )
        .groupBy(*VISITOR_DAY)
        .agg(F.max("_hours").alias("_longest_session_h"))
    )
    if "device_class" in events.columns:
        # Enriched events: device_class is "bot" for the crawler pattern and ua-parser's
        # spiders alike, decided once per distinct agent (a regex over every event's agent
        # string was the enrichment's costliest part, #16).
        crawler = F.coalesce(F.col("device_class") == "bot", F.lit(False))
    else:
        crawler = F.coalesce(F.col("user_agent"), F.lit("")).rlike(rules.crawler_pattern)
    daily = events.groupBy(*VISITOR_DAY).agg(
        F.max(crawler).alias("_crawler"),
        F.sum((F.col("event_type") == "page_view").cast("int")).alias("_views"),
        F.sum((F.col("event_type") == "page_ping").cast("int")).alias("_pings"),
    )
    verdict = (
        daily.join(per_minute, list(VISITOR_DAY))
        .join(longest, list(VISITOR_DAY))
        .select(
            *VISITOR_DAY,
            F.when(F.col("_crawler"), "crawler_user_agent")
            .when(F.col("_peak_per_minute") > rules.max_events_per_minute, "event_rate")
            .when(F.col("_longest_session_h") > rules.max_session_hours, "session_too_long")
            .when(
                F.col("source").isin(*ping_sources)
                & (F.col("_views") >= rules.min_page_views_without_pings)
                & (F.col("_pings") == 0),
                "no_page_pings",
            )
            .alias("bot_rule"),
        )
    )
    return events.join(verdict, list(VISITOR_DAY), "left")
