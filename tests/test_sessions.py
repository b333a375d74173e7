"""Sessionization and page-view edges, hand-built (chispa)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.clickstream.sessions import assign_sessions, build_page_views, build_sessions

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType(), False),
        T.StructField("event_id", T.StringType(), False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("visitor_id", T.StringType(), False),
        T.StructField("user_id", T.StringType()),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("url", T.StringType()),
        T.StructField("engagement_msec", T.LongType()),
    ]
)
T0 = datetime(2026, 11, 24, 10, 0, 0)
_NULL_TEXT = (
    "url_path",
    "page_title",
    "fund_ticker",
    "asset_class",
    "topic",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
_FIXED = {
    "referrer_class": "direct",
    "device_class": "desktop",
    "browser": "Chrome",
    "os": "Windows",
}


def _events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    full = [(r + (None,) * (len(EVENT_SCHEMA) - len(r))) for r in rows]
    extras = {c: F.lit(None).cast("string") for c in _NULL_TEXT}
    extras.update({c: F.lit(v) for c, v in _FIXED.items()})
    return spark.createDataFrame(full, EVENT_SCHEMA).withColumns(extras)


def _ev(event_id: str, at: datetime, kind: str = "page_view", visitor: str = "v1", url: str = "/a"):
    return ("web", event_id, at, visitor, None, kind, url)


def _session_spans(df: DataFrame) -> list[tuple]:
    sessionized = assign_sessions(df, timeout_minutes=30)
    rows = sessionized.groupBy("visitor_id", "session_id").agg(
        F.min("event_ts").alias("start"), F.count("*").alias("n"), F.min("session_date").alias("d")
    )
    return sorted((r["visitor_id"], r["start"], r["n"], r["d"]) for r in rows.collect())


def test_exactly_timeout_apart_stays_one_session(spark: SparkSession) -> None:
    df = _events(spark, [_ev("a", T0), _ev("b", T0 + timedelta(minutes=30))])
    assert _session_spans(df) == [("v1", T0, 2, T0.date())]


def test_just_over_timeout_starts_a_new_session(spark: SparkSession) -> None:
    later = T0 + timedelta(minutes=30, milliseconds=1)
    df = _events(spark, [_ev("a", T0), _ev("b", later)])
    assert _session_spans(df) == [("v1", T0, 1, T0.date()), ("v1", later, 1, T0.date())]


def test_midnight_crossing_session_belongs_to_its_start_date(spark: SparkSession) -> None:
    late = datetime(2026, 11, 24, 23, 50)
    df = _events(spark, [_ev("a", late), _ev("b", late + timedelta(minutes=20))])
    assert _session_spans(df) == [("v1", late, 2, date(2026, 11, 24))]


def test_out_of_order_arrival_and_duplicates_give_the_same_sessions(spark: SparkSession) -> None:
    rows = [_ev(f"e{i}", T0 + timedelta(minutes=10 * i)) for i in range(6)]
    rows.append(_ev("x", T0 + timedelta(hours=3)))  # a single-event session
    shuffled = [rows[i] for i in (5, 2, 6, 0, 3, 1, 4)] + [rows[2], rows[6]]  # + two duplicates
    ordered = assign_sessions(_events(spark, rows), timeout_minutes=30)
    messy = assign_sessions(_events(spark, shuffled), timeout_minutes=30)
    assert_df_equality(
        messy.select("event_id", "session_id"),
        ordered.select("event_id", "session_id"),
        ignore_row_order=True,
    )
    assert ordered.select("session_id").distinct().count() == 2


def test_sessions_are_per_visitor_and_ids_are_deterministic(spark: SparkSession) -> None:
    df = _events(spark, [_ev("a", T0, visitor="v1"), _ev("b", T0, visitor="v2")])
    first = {
        r["event_id"]: r["session_id"] for r in assign_sessions(df, timeout_minutes=30).collect()
    }
    again = {
        r["event_id"]: r["session_id"] for r in assign_sessions(df, timeout_minutes=30).collect()
    }
    assert first == again and first["a"] != first["b"]


def test_engaged_time_from_ping_buckets_and_time_to_next(spark: SparkSession) -> None:
    rows = [
        _ev("pv1", T0, url="/a"),
        *[_ev(f"p{s}", T0 + timedelta(seconds=s), "page_ping", url="/a") for s in (10, 21, 25, 30)],
        _ev("pv2", T0 + timedelta(seconds=95), url="/b"),
        _ev("pv3", T0 + timedelta(seconds=100), url="/c"),
        _ev("p3", T0 + timedelta(seconds=110), "page_ping", url="/c"),
    ]
    sessionized = assign_sessions(_events(spark, rows), timeout_minutes=30)
    views = build_page_views(sessionized, heartbeat_seconds=10, min_visit_seconds=10)
    got = views.select("page_view_id", "ping_buckets", "engaged_s", "time_to_next_s", "is_exit")
    expected = spark.createDataFrame(
        [
            # pings at 10, 21, 25, 30 s fall in buckets 1, 2, 2, 3 -> 10 * (3 - 1) + 10 = 30 s
            ("pv1", 3, 30.0, 95.0, False),
            ("pv2", 0, 0.0, 5.0, False),
            ("pv3", 1, 10.0, None, True),
        ],
        "page_view_id string, ping_buckets long, engaged_s double, time_to_next_s double, "
        "is_exit boolean",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_engaged_time_is_capped_by_next_page_view(spark: SparkSession) -> None:
    rows = [
        ("ga4", "pv1", T0, "g1", None, "page_view", "/a", None),
        ("ga4", "eng", T0 + timedelta(seconds=5), "g1", None, "engagement", "/a", 60_000),
        ("ga4", "pv2", T0 + timedelta(seconds=20), "g1", None, "page_view", "/b", None),
    ]
    sessionized = assign_sessions(_events(spark, rows), timeout_minutes=30)
    views = {
        r["page_view_id"]: r["engaged_s"]
        for r in build_page_views(sessionized, heartbeat_seconds=10, min_visit_seconds=10).collect()
    }
    assert views == {"pv1": 20.0, "pv2": 0.0}


def test_session_summary(spark: SparkSession) -> None:
    rows = [
        _ev("pv1", T0, url="/landing"),
        _ev("p1", T0 + timedelta(seconds=10), "page_ping", url="/landing"),
        ("web", "login", T0 + timedelta(seconds=12), "v1", "ADV1", "login", "/login"),
        _ev("dl", T0 + timedelta(seconds=15), "document_download", url="/landing"),
        _ev("pv2", T0 + timedelta(seconds=40), url="/exit"),
    ]
    sessionized = assign_sessions(_events(spark, rows), timeout_minutes=30)
    views = build_page_views(sessionized, heartbeat_seconds=10, min_visit_seconds=10)
    s = build_sessions(sessionized, views).collect()
    assert len(s) == 1
    row = s[0]
    assert (row["landing_page"], row["exit_page"], row["page_views"], row["events"]) == (
        "/landing",
        "/exit",
        2,
        5,
    )
    assert (row["user_id"], row["downloads"], row["logins"], row["converted"]) == (
        "ADV1",
        1,
        1,
        True,
    )
    assert row["duration_s"] == pytest.approx(40.0) and row["engaged_s"] == pytest.approx(10.0)
