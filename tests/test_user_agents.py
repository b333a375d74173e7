"""User agents read by ua-parser, mapped onto the suite's vocabulary, parsed once per agent."""

from __future__ import annotations

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from decisionlake.clickstream.user_agents import parse_batch, parse_one, with_user_agent_parts
from decisionlake.config import BotRulesConfig

CRAWLERS = BotRulesConfig().crawler_pattern


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
         ("Safari", "iOS", "mobile")),
        ("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.7 Mobile/15E148 Safari/604.1", ("Safari", "iOS", "tablet")),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Mobile Safari/537.36", ("Chrome", "Android", "mobile")),
        # An Android tablet: no "Mobile" token.
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Safari/537.36", ("Chrome", "Android", "tablet")),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
         ("Chrome", "iOS", "mobile")),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", ("Edge", "Windows", "desktop")),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/18.1 Safari/605.1.15", ("Safari", "macOS", "desktop")),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36", ("Chrome", "ChromeOS", "desktop")),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
         ("Firefox", "Linux", "desktop")),
        ("Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Silk/120.1.1 like Chrome/120.0.0.0 Safari/537.36", ("Amazon Silk", "Android", "tablet")),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
         ("Googlebot", "Other", "bot")),
        ("%%% not an agent", ("Other", "Other", "desktop")),
    ],
)  # fmt: skip
def test_agents_map_onto_the_suites_vocabulary(agent: str, expected: tuple) -> None:
    assert parse_one(agent) == expected


def test_a_batch_keeps_its_index_and_nulls() -> None:
    agents = pd.Series(["python-requests/2.32.3", None], index=[7, 9])
    parts = parse_batch(agents)
    assert list(parts.index) == [7, 9]
    assert parts.loc[9].isna().all() and parts.loc[7, "browser"] == "Python Requests"


def test_parts_are_joined_back_to_every_event(spark: SparkSession) -> None:
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Version/18.1 Mobile Safari/1"
    rows = [(str(i), iphone) for i in range(5)] + [
        ("5", "python-requests/2.32.3"),  # the configurable crawler rule
        ("6", None),
    ]
    events = spark.createDataFrame(rows, "event_id string, user_agent string")
    got = {
        r["event_id"]: (r["browser"], r["os"], r["device_class"])
        for r in events.transform(with_user_agent_parts, crawler_pattern=CRAWLERS).collect()
    }
    assert got == {
        **{str(i): ("Safari", "iOS", "mobile") for i in range(5)},
        "5": ("Python Requests", "Other", "bot"),
        "6": (None, None, None),
    }
