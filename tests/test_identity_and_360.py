"""Identity stitching, point-in-time advisor 360, bot rules and enrichment (hand-built rows)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from decisionlake.clickstream.bots import classify_bots
from decisionlake.clickstream.enrich import enrich_events
from decisionlake.clickstream.identity import (
    connected_components,
    daily_links,
    links_over_history,
    resolve_identity,
)
from decisionlake.config import Advisor360Config, BotRulesConfig, ReferrerRulesConfig
from decisionlake.gold.advisor_360 import advisor_360
from decisionlake.sources.canonical import CANONICAL_SCHEMA

DAY1, DAY2, DAY3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
X_EMAIL = "Pat.Lee@Harbor.example "


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour)


def _sha(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _advisors(spark: SparkSession) -> DataFrame:
    rows = [
        ("X", "Harbor", "b1", "ria", "west", "<50M", _sha(X_EMAIL)),
        ("Y", "Harbor", "b1", "ria", "west", "<50M", _sha("y@harbor.example")),
        ("Z", "Summit", "b2", "ibd", "east", ">1B", _sha("z@summit.example")),
    ]
    return spark.createDataFrame(
        rows,
        "advisor_id string, firm string, branch string, channel string, region string, "
        "aum_band string, email_token string",
    )


def _link_events(spark: SparkSession) -> DataFrame:
    rows = [
        # cookie A: anonymous on day 1, logs in as X on day 2
        ("web", "A", None, "page_view", _at(DAY1, 9), None),
        ("web", "A", "X", "login", _at(DAY2, 9), None),
        # cookie B: a form submit with X's (hashed) email
        ("web", "B", None, "form_submit", _at(DAY2, 10), {"email_token": _sha(X_EMAIL)}),
        # cookie C: a shared computer, X twice and Y once -> conflict, X wins
        ("web", "C", "X", "login", _at(DAY2, 11), None),
        ("web", "C", "X", "login", _at(DAY2, 12), None),
        ("web", "C", "Y", "login", _at(DAY2, 13), None),
        # cookie E: Z alone
        ("web", "E", "Z", "login", _at(DAY2, 14), None),
        # a user id unknown to the CRM links nothing
        ("web", "F", "NOT-IN-CRM", "login", _at(DAY2, 15), None),
    ]
    return spark.createDataFrame(
        rows,
        "source string, visitor_id string, user_id string, event_type string, "
        "event_ts timestamp, properties map<string,string>",
    ).withColumn("event_date", F.to_date("event_ts"))


def _identity(spark: SparkSession) -> DataFrame:
    links = links_over_history(daily_links(_link_events(spark), _advisors(spark)))
    resolved, _ = resolve_identity(links, max_iterations=10)
    return resolved


def test_chain_of_cookies_stitches_to_one_advisor(spark: SparkSession) -> None:
    got = _identity(spark).select("visitor_id", "advisor_id", "resolution", "component_advisors")
    expected = spark.createDataFrame(
        [
            ("A", "X", "shared_component", 2),
            ("B", "X", "shared_component", 2),
            ("C", "X", "visitor_conflict", 2),
            ("E", "Z", "unique", 1),
        ],
        "visitor_id string, advisor_id string, resolution string, component_advisors int",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    components = {r["visitor_id"]: r["component_id"] for r in _identity(spark).collect()}
    assert components["A"] == components["B"] == components["C"] != components["E"]


def test_connected_components_labels_each_node_with_its_components_least_node(
    spark: SparkSession,
) -> None:
    # A path n1 - n2 - ... - n6 (given out of order, one edge twice, one reversed), a
    # triangle, and a pair: the path's least label walks five hops, one a round.
    edges = spark.createDataFrame(
        [
            ("n5", "n6"),
            ("n4", "n5"),
            ("n3", "n4"),
            ("n3", "n4"),
            ("n3", "n2"),
            ("n1", "n2"),
            ("t2", "t3"),
            ("t3", "t1"),
            ("t1", "t2"),
            ("p9", "p8"),
        ],
        "src string, dst string",
    )
    labels, rounds = connected_components(edges, max_iterations=10)
    expected = spark.createDataFrame(
        [(f"n{i}", "n1") for i in range(1, 7)]
        + [(f"t{i}", "t1") for i in range(1, 4)]
        + [("p8", "p8"), ("p9", "p8")],
        "node string, component string",
    )
    assert_df_equality(labels, expected, ignore_row_order=True, ignore_nullable=True)
    # n1's label reaches n6 in round 5 (round 1: each node's least neighbour); round 6
    # changes nothing.
    assert rounds == 6
    with pytest.raises(RuntimeError, match="did not converge in 5 iterations"):
        connected_components(edges, max_iterations=5)


def _sessions(spark: SparkSession) -> DataFrame:
    rows = [
        ("s1", DAY1, "web", "A", 120.0, 1, 0, "search", "desktop"),  # anonymous, before login
        ("s2", DAY2, "web", "A", 60.0, 0, 0, "direct", "desktop"),
        ("s3", DAY2, "web", "B", 30.0, 0, 1, "email", "mobile"),
        ("s4", DAY3, "web", "A", 600.0, 5, 0, "direct", "desktop"),  # after the as-of date
        ("s5", DAY1, "web", "E", 90.0, 0, 0, "social", "tablet"),
    ]
    return spark.createDataFrame(
        rows,
        "session_id string, session_date date, source string, visitor_id string, "
        "engaged_s double, downloads long, form_submits long, referrer_class string, "
        "device_class string",
    )


def _page_views(spark: SparkSession) -> DataFrame:
    rows = [
        (DAY1, "web", "A", "esg", "equity", "NWESX"),
        (DAY1, "web", "A", "esg", "fixed_income", "NWGBX"),
        (DAY2, "web", "B", "retirement", "multi_asset", "NWRTX"),
        (DAY3, "web", "A", "alternatives", "alternatives", "NWPCX"),
    ]
    return spark.createDataFrame(
        rows,
        "session_date date, source string, visitor_id string, topic string, "
        "asset_class string, fund_ticker string",
    )


def _360(spark: SparkSession, as_of: date) -> dict[str, dict]:
    rows = advisor_360(
        _advisors(spark),
        _sessions(spark),
        _page_views(spark),
        _identity(spark),
        as_of=as_of,
        settings=Advisor360Config(funds=["NWESX", "NWGBX", "NWRTX"]),
    ).collect()
    return {r["advisor_id"]: r.asDict() for r in rows}


def test_advisor_360_stitches_retroactively_but_only_with_links_known_then(
    spark: SparkSession,
) -> None:
    day1 = _360(spark, DAY1)
    # On day 1 nothing links A or E to an advisor yet: no activity may leak backwards.
    assert day1["X"]["sessions_90d"] == 0 and day1["Z"]["sessions_90d"] == 0
    day2 = _360(spark, DAY2)
    x = day2["X"]
    # A's anonymous day-1 session counts once A is linked; the day-3 session does not.
    assert (x["sessions_7d"], x["downloads_7d"], x["form_submits_7d"]) == (3, 1, 1)
    assert x["engaged_minutes_7d"] == round(210 / 60, 2)
    assert x["linked_visitors"] == 2 and x["recency_days"] == 0 and x["active_days_7d"] == 2
    assert x["topic_share_esg"] == 2 / 3 and x["topic_share_retirement"] == 1 / 3
    assert (x["fund_share_nwesx"], x["fund_share_nwrtx"]) == (1 / 3, 1 / 3)
    assert x["channel_share_search"] == 1 / 3 and x["mobile_session_share"] == 1 / 3
    assert day2["Y"]["sessions_90d"] == 0 and day2["Y"]["recency_days"] is None
    assert day2["Z"]["sessions_90d"] == 1 and day2["Z"]["recency_days"] == 1
    assert len(day2) == 3  # every CRM advisor has a row


def test_bot_rules(spark: SparkSession) -> None:
    t0 = datetime(2026, 11, 24, 9)
    crawler = "Mozilla/5.0 (compatible; Googlebot/2.1)"
    browser = "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0"
    rows = [("crawler", t0, "page_view", crawler)]
    rows += [("rapid", t0 + timedelta(seconds=2 * i), "page_view", browser) for i in range(25)]
    rows += [("marathon", t0 + timedelta(minutes=20 * i), "page_view", browser) for i in range(16)]
    rows += [("marathon", t0 + timedelta(minutes=20 * i, seconds=10), "page_ping", browser)
             for i in range(16)]  # fmt: skip
    rows += [("no_pings", t0 + timedelta(minutes=2 * i), "page_view", browser) for i in range(12)]
    rows += [
        ("human", t0, "page_view", browser),
        ("human", t0 + timedelta(seconds=10), "page_ping", browser),
    ]
    events = spark.createDataFrame(
        [("web", f"{v}-{i}", v, *r) for i, (v, *r) in enumerate(rows)],
        "source string, event_id string, visitor_id string, event_ts timestamp, "
        "event_type string, user_agent string",
    ).withColumn("event_date", F.to_date("event_ts"))
    verdicts = classify_bots(
        events, rules=BotRulesConfig(), timeout_minutes=30, ping_sources=["web"]
    )
    got = {
        r["visitor_id"]: r["bot_rule"]
        for r in verdicts.select("visitor_id", "bot_rule").distinct().collect()
    }
    assert got == {
        "crawler": "crawler_user_agent",
        "rapid": "event_rate",
        "marathon": "session_too_long",
        "no_pings": "no_page_pings",
        "human": None,
    }
    assert verdicts.count() == events.count()  # flagged, never dropped
    # A source whose tracker sends no pings (GA4's adapter does not declare PAGE_PINGS).
    quiet = events.where("visitor_id = 'no_pings'").withColumn("source", F.lit("ga4"))
    rules = classify_bots(quiet, rules=BotRulesConfig(), timeout_minutes=30, ping_sources=["web"])
    assert {r["bot_rule"] for r in rules.collect()} == {None}


def test_enrichment_of_urls_referrers_agents_and_ips(spark: SparkSession) -> None:
    base = {f.name: None for f in CANONICAL_SCHEMA.fields}
    site = "https://advisors.northwind-funds.example"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Version/18.1 Mobile Safari/604.1"
    )
    edge = "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0 Safari/537.36 Edg/131.0"
    mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Version/18.1 Safari/605.1.15"
    android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/131.0 Mobile Safari/537.36"
    ipad = "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) Version/17.7 Mobile Safari/604.1"
    utm = "utm_source=newsletter&utm_medium=email&utm_campaign=m1"
    ipv6 = "2001:db8:85a3:8d3:1319:8a2e:370:7348"
    cases = [
        (f"{site}/funds/nwesx?{utm}", "https://www.google.com/", iphone, "203.0.113.77"),
        (f"{site}/insights", "https://www.bing.com/search?q=esg", edge, ipv6),
        (f"{site}/funds", f"{site}/insights", mac, "10.0.0.1"),
        (f"{site}/", "https://www.linkedin.com/feed/", android, None),
        (f"{site}/", None, ipad, None),
        (f"{site}/", "https://news.example-finance-news.example/markets", None, None),
    ]
    rows = [
        {**base, "source": "web", "event_id": str(i), "event_ts": datetime(2026, 11, 24),
         "event_date": date(2026, 11, 24), "visitor_id": "v", "event_type": "page_view",
         "url": url, "referrer": ref, "user_agent": ua, "ip": ip}
        for i, (url, ref, ua, ip) in enumerate(cases)
    ]  # fmt: skip
    enriched = enrich_events(
        spark.createDataFrame(rows, CANONICAL_SCHEMA),
        referrer_rules=ReferrerRulesConfig(),
        crawler_pattern=BotRulesConfig().crawler_pattern,
        pseudonym_key=b"k" * 32,
    )
    got = [
        tuple(r)
        for r in enriched.orderBy("event_id")
        .select(
            "url_path",
            "utm_medium",
            "referrer_class",
            "device_class",
            "browser",
            "os",
            "ip_truncated",
        )
        .collect()
    ]
    assert got == [
        ("/funds/nwesx", "email", "email", "mobile", "Safari", "iOS", "203.0.113.0"),
        ("/insights", None, "search", "desktop", "Edge", "Windows", "2001:db8:85a3::"),
        ("/funds", None, "internal", "desktop", "Safari", "macOS", "10.0.0.0"),
        ("/", None, "social", "mobile", "Chrome", "Android", None),
        ("/", None, "direct", "tablet", "Safari", "iOS", None),
        ("/", None, "other", None, None, None, None),
    ]


def test_email_tokens_are_keyed_hmacs_that_join_crm_and_web(spark: SparkSession) -> None:
    import hashlib
    import hmac

    from decisionlake.clickstream.enrich import allowed_properties
    from decisionlake.core.privacy import hmac_sha256
    from decisionlake.sources.crm import to_silver_advisors

    key, other = b"k" * 32, b"o" * 32
    df = spark.createDataFrame([("abc",), (None,)], "m string")
    got = [r[0] for r in df.select(hmac_sha256(F.col("m"), key)).collect()]
    assert got == [hmac.new(key, b"abc", hashlib.sha256).hexdigest(), None]

    email = " X@Harbor.Example "
    bronze = spark.createDataFrame(
        [("X", "f", "l", email, "p", "Harbor", "b1", "ria", "west", "<50M", None, "s",
          date(2026, 11, 24))],
        "advisor_id string, first_name string, last_name string, email string, phone string, "
        "firm string, branch string, channel string, region string, aum_band string, "
        "created_at date, source_file string, ingest_date date",
    )  # fmt: skip
    crm_token = to_silver_advisors(bronze, key=key).first()["email_token"]
    web_hash = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    props = spark.createDataFrame(
        [({"email_sha256": web_hash, "page": "x"},)], "p map<string,string>"
    )
    web = props.select(allowed_properties(F.col("p"), key=key).alias("p")).first()["p"]
    assert web["email_token"] == crm_token and "email_sha256" not in web
    again = props.select(allowed_properties(F.col("p"), key=other).alias("p")).first()["p"]
    assert again["email_token"] != crm_token and web_hash not in str(web)
