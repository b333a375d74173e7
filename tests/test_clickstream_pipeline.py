"""The clickstream pipeline on generated and real (GA4) data: properties, late data, accounting."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from decisionlake.config import AppConfig
from decisionlake.dev.generate import build_spec, generate
from decisionlake.io.lake import read_delta, table_version
from decisionlake.jobs import build_sessions, ingest

from .conftest import REAL_DATA, make_config

pytestmark = pytest.mark.integration
END = date(2026, 11, 24)
DAYS = [END - timedelta(days=n) for n in (3, 2, 1, 0)]


def _args(cfg: AppConfig, day: date, *extra: str) -> list[str]:
    return [
        "--env", "test", "--run-date", day.isoformat(),
        "--set", f"paths.landing={cfg.paths.landing}",
        "--set", f"paths.lake={cfg.paths.lake}",
        "--set", f"paths.artifacts={cfg.paths.artifacts}",
        *extra,
    ]  # fmt: skip


def _table(spark: SparkSession, cfg: AppConfig, name: str) -> DataFrame:
    return read_delta(spark, cfg.table_uri(name))


def _comparable(df: DataFrame) -> DataFrame:
    """Maps cannot be sorted or hashed: compare them as sorted entry lists."""
    maps = [f.name for f in df.schema.fields if isinstance(f.dataType, T.MapType)]
    return df.withColumns({m: F.to_json(F.array_sort(F.map_entries(m))) for m in maps})


@pytest.fixture(scope="module")
def lakes(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    landing = str(root / "landing")
    incremental = make_config("test", root / "inc", **{"paths.landing": landing})
    scratch = make_config("test", root / "scratch", **{"paths.landing": landing})
    manifest = generate(
        spark, incremental, build_spec(incremental, end_date=END, days=4, advisors=30, seed=11)
    )
    moved = _deliver_late(Path(landing), from_day=END - timedelta(days=2), to_day=END)
    # Incremental: each arrival day is ingested, then sessions are built for that day.
    before_last_run = None
    for day in DAYS:
        assert ingest.main(["--source", "web", *_args(incremental, day)]) == 0
        if day == DAYS[0]:
            assert ingest.main(["--source", "crm", *_args(incremental, day)]) == 0
        if day == END:
            before_last_run = (
                _table(spark, incremental, "silver.sessions")
                .where(F.col("session_date") < F.lit(END))
                .localCheckpoint()
            )
        assert build_sessions.main(_args(incremental, day)) == 0
    # From scratch: everything ingested first, one run whose window covers all days.
    for day in DAYS:
        assert ingest.main(["--source", "web", *_args(scratch, day)]) == 0
    assert build_sessions.main(_args(scratch, END, "--set", "clickstream.lookback_days=6")) == 0
    return {
        "inc": incremental,
        "scratch": scratch,
        "manifest": manifest,
        "before": before_last_run,
        "moved": moved,
    }


def _deliver_late(landing: Path, *, from_day: date, to_day: date) -> int:
    """Move the later half of one advisor's D-2 events into the arrival folder of D.

    Cookies are ``ck-<seed>-<visitor index>-<device>``; advisors are indexes below 30 here.
    """
    source = sorted((landing / "clickstream" / f"date={from_day}").glob("*.json.gz"))[0]
    lines = gzip.decompress(source.read_bytes()).splitlines()
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    by_cookie: dict[str, list[int]] = {}
    for i, event in enumerate(parsed):
        cookie = event.get("cookie_id") if isinstance(event, dict) else None
        if isinstance(cookie, str) and int(cookie.split("-")[2]) < 30:  # an advisor, not a bot
            by_cookie.setdefault(cookie, []).append(i)
    cookie, indexes = max(by_cookie.items(), key=lambda kv: len(kv[1]))
    late = set(indexes[len(indexes) // 2 :])
    source.write_bytes(
        gzip.compress(b"\n".join(x for i, x in enumerate(lines) if i not in late) + b"\n")
    )
    target = landing / "clickstream" / f"date={to_day}" / "late-delivery.json.gz"
    target.write_bytes(gzip.compress(b"\n".join(lines[i] for i in sorted(late)) + b"\n"))
    return len(late)


def test_late_data_rerun_equals_from_scratch(spark: SparkSession, lakes: dict) -> None:
    inc, scratch = lakes["inc"], lakes["scratch"]
    late_on_last_day = lakes["manifest"]["clickstream_by_arrival_date"][END.isoformat()][
        "late_lines"
    ]
    assert late_on_last_day > 0  # the last arrival day really delivers late events
    for name in ("silver.sessions", "silver.page_views", "silver.events", "silver.bot_events"):
        a, b = _comparable(_table(spark, inc, name)), _comparable(_table(spark, scratch, name))
        assert_df_equality(a, b, ignore_row_order=True, ignore_column_order=True)
    # The late events changed sessions of earlier days when the last day ran.
    after = _table(spark, inc, "silver.sessions").where(F.col("session_date") < F.lit(END))
    assert lakes["before"].exceptAll(after).count() + after.exceptAll(lakes["before"]).count() > 0


def test_rerun_rewrites_nothing(spark: SparkSession, lakes: dict) -> None:
    cfg = lakes["inc"]
    uris = [cfg.table_uri(t) for t in ("silver.sessions", "silver.page_views")]
    before = [table_version(spark, uri) for uri in uris]
    assert build_sessions.main(_args(cfg, END)) == 0
    # Nothing changed, so the MERGE of sessions and page views commits nothing.
    assert [table_version(spark, uri) for uri in uris] == before


def test_every_human_event_in_exactly_one_session(spark: SparkSession, lakes: dict) -> None:
    cfg = lakes["scratch"]
    events = _table(spark, cfg, "silver.events")
    sessions = _table(spark, cfg, "silver.sessions")
    views = _table(spark, cfg, "silver.page_views")
    assert events.count() == events.select("source", "event_id").distinct().count()
    assert sessions.agg(F.sum("events")).first()[0] == events.count()
    page_view_events = events.where("event_type = 'page_view'").count()
    assert views.count() == page_view_events == sessions.agg(F.sum("page_views")).first()[0]
    assert views.join(sessions, "session_id", "left_anti").count() == 0
    bronze = _table(spark, cfg, "bronze.clickstream")
    assert events.count() + _table(spark, cfg, "silver.bot_events").count() == bronze.count()


def test_sessions_never_overlap_and_engaged_time_fits(spark: SparkSession, lakes: dict) -> None:
    sessions = _table(spark, lakes["scratch"], "silver.sessions")
    nxt = F.lead("session_start").over(
        Window.partitionBy("source", "visitor_id").orderBy("session_start")
    )
    overlaps = sessions.withColumn("_next", nxt).where(F.col("_next") <= F.col("session_end"))
    assert overlaps.count() == 0
    assert sessions.where(F.col("engaged_s") > F.col("duration_s") + 1e-6).count() == 0
    assert sessions.where(F.col("duration_s") > 4 * 3600).count() == 0


def test_bots_are_set_aside_with_their_rule(spark: SparkSession, lakes: dict) -> None:
    cfg = lakes["scratch"]
    bots = _table(spark, cfg, "silver.bot_events")
    rules = {r["bot_rule"] for r in bots.select("bot_rule").distinct().collect()}
    assert rules and rules <= {
        "crawler_user_agent",
        "event_rate",
        "session_too_long",
        "no_page_pings",
    }
    assert "crawler_user_agent" in rules
    # The generator's bots are the last visitor indexes; no human lands among the bots.
    first_bot = 30 + 15
    index = F.split("visitor_id", "-")[2].cast("int")
    assert bots.where(index < first_bot).count() == 0
    assert _table(spark, cfg, "silver.events").where(index >= first_bot).count() == 0


def test_ga4_real_sample_through_adapter_to_sessions(
    spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg = make_config("test", tmp_path)
    export_day = date(2020, 12, 31)
    target = Path(cfg.paths.landing) / "ga4" / f"date={export_day}"
    target.mkdir(parents=True)
    sample = REAL_DATA / "ga4" / "ga4_sample_events_2020-11_2020-12.ndjson"
    shutil.copy(sample, target / sample.name)
    lines = sum(1 for _ in sample.open(encoding="utf-8"))
    assert ingest.main(["--source", "ga4", *_args(cfg, export_day)]) == 0
    assert build_sessions.main(_args(cfg, export_day, "--set", "clickstream.lookback_days=70")) == 0
    bronze = _table(spark, cfg, "bronze.ga4_events")
    events = _table(spark, cfg, "silver.events")
    bots = _table(spark, cfg, "silver.bot_events")
    sessions = _table(spark, cfg, "silver.sessions")
    assert bronze.count() == lines == 471
    assert events.count() + bots.count() == lines
    assert sessions.agg(F.sum("events")).first()[0] == events.count()
    assert (
        sessions.select("visitor_id").distinct().count()
        == events.select("visitor_id").distinct().count()
    )
    assert events.where("event_type = 'page_view' AND url_host IS NULL").count() == 0
    assert (
        _table(spark, cfg, "silver.page_views").count()
        == events.where("event_type = 'page_view'").count()
    )
