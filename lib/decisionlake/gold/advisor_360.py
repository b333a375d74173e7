"""gold.advisor_360: one row per CRM advisor per as-of date (point in time).

A row as of date D uses only sessions and page views dated on or before D and identity links
first seen on or before D; anonymous sessions of a visitor count for the advisor once that
visitor is linked (retroactive stitching), never before the link exists.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.config import Advisor360Config

CRM_ATTRIBUTES = ("firm", "branch", "channel", "region", "aum_band")


def _name(value: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", value.lower()).strip("_")


def _share(condition: Column, of: Column) -> Column:
    total = F.sum(of.cast("int"))
    return F.when(total > 0, F.sum((condition & of).cast("int")) / total).otherwise(F.lit(None))


def stitch(activity: DataFrame, identity: DataFrame, *, as_of: date) -> DataFrame:
    """Attach ``advisor_id`` to sessions/page views of visitors linked by ``as_of``."""
    known = identity.where(F.col("first_linked_at") < F.lit(as_of + timedelta(days=1))).select(
        "source", "visitor_id", "advisor_id"
    )
    return activity.join(known, ["source", "visitor_id"])


def advisor_360(
    advisors: DataFrame,
    sessions: DataFrame,
    page_views: DataFrame,
    identity: DataFrame,
    *,
    as_of: date,
    settings: Advisor360Config,
    text_features: DataFrame | None = None,
) -> DataFrame:
    """Build the as-of-``as_of`` rows for every advisor of the CRM dimension.

    ``text_features`` (gold.advisor_text_features), when given, adds its columns prefixed
    ``text_``; only its rows for ``as_of`` are used.
    """
    longest = max(settings.windows_days)
    since = as_of - timedelta(days=longest - 1)
    period = F.col("session_date").between(since.isoformat(), as_of.isoformat())
    s = stitch(sessions.where(period), identity, as_of=as_of)
    v = stitch(page_views.where(period), identity, as_of=as_of)

    def within(days: int) -> Column:
        return F.col("session_date") >= F.lit(as_of - timedelta(days=days - 1))

    session_aggs: list[Column] = []
    for days in settings.windows_days:
        w = within(days)
        session_aggs += [
            F.sum(w.cast("int")).alias(f"sessions_{days}d"),
            F.sum(F.when(w, F.col("engaged_s"))).alias(f"engaged_minutes_{days}d"),
            F.sum(F.when(w, F.col("downloads"))).alias(f"downloads_{days}d"),
            F.sum(F.when(w, F.col("form_submits"))).alias(f"form_submits_{days}d"),
            F.count_distinct(F.when(w, F.col("session_date"))).alias(f"active_days_{days}d"),
        ]
    any_session = F.lit(True)
    session_aggs += [
        F.max("session_date").alias("last_session_date"),
        F.count_distinct("source", "visitor_id").alias("linked_visitors"),
        *[
            _share(F.col("referrer_class") == r, any_session).alias(f"channel_share_{_name(r)}")
            for r in settings.referrer_classes
        ],
        _share(F.col("device_class") == "mobile", any_session).alias("mobile_session_share"),
    ]
    per_session = s.groupBy("advisor_id").agg(*session_aggs)

    has_topic = F.col("topic").isNotNull()
    has_class = F.col("asset_class").isNotNull()
    per_view = v.groupBy("advisor_id").agg(
        F.count("*").alias(f"page_views_{longest}d"),
        *[
            _share(F.col("topic") == t, has_topic).alias(f"topic_share_{_name(t)}")
            for t in settings.topics
        ],
        *[
            _share(F.col("asset_class") == a, has_class).alias(f"asset_class_share_{_name(a)}")
            for a in settings.asset_classes
        ],
        *[
            _share(F.col("fund_ticker") == f, F.col("fund_ticker").isNotNull()).alias(
                f"fund_share_{_name(f)}"
            )
            for f in settings.funds
        ],
        F.mode("fund_ticker", deterministic=True).alias(f"top_fund_{longest}d"),
    )
    counts = [
        c
        for c in per_session.columns
        if re.match(r"(sessions|downloads|form_submits|active_days)_", c)
    ]
    return (
        advisors.select("advisor_id", *CRM_ATTRIBUTES)
        .join(per_session, "advisor_id", "left")
        .join(per_view, "advisor_id", "left")
        .fillna(0, subset=[*counts, "linked_visitors", f"page_views_{longest}d"])
        .fillna(0.0, subset=[c for c in per_session.columns if c.startswith("engaged_minutes_")])
        .withColumns(
            {
                **{
                    f"engaged_minutes_{d}d": F.round(F.col(f"engaged_minutes_{d}d") / 60, 2)
                    for d in settings.windows_days
                },
                "recency_days": F.datediff(F.lit(as_of), F.col("last_session_date")),
                "as_of_date": F.lit(as_of),
            }
        )
        .drop("last_session_date")
        .transform(_with_text, text_features=text_features, as_of=as_of)
    )


def _with_text(df: DataFrame, *, text_features: DataFrame | None, as_of: date) -> DataFrame:
    if text_features is None:
        return df
    text = text_features.where(F.col("as_of_date") == F.lit(as_of)).drop("as_of_date")
    renamed = text.select(
        "advisor_id", *[F.col(c).alias(f"text_{c}") for c in text.columns if c != "advisor_id"]
    )
    counts = [c for c in renamed.columns if re.match(r"text_(notes|lex_|non_english)", c)]
    return df.join(renamed, "advisor_id", "left").fillna(0, subset=counts)
