"""build_sessions: bronze events of every source -> silver events, bots, sessions, page views.

Each run recomputes the run date and ``clickstream.lookback_days`` before it (the window), with
one more day read as context so sessions crossing into the window start where they really
start. Events and bot events of the window are replaced (replaceWhere); of sessions and page
views only the dates whose rows changed (late data) are replaced, so a rerun without new data
commits nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.bots import classify_bots
from decisionlake.clickstream.enrich import enrich_events
from decisionlake.clickstream.sessions import (
    SESSION_INPUT_COLUMNS,
    assign_sessions,
    build_page_views,
    build_sessions,
)
from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.frames import RunWindow, cached
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.sources import event_sources

NAME = "build_sessions"


def read_canonical_events(ctx: JobContext, window: RunWindow) -> DataFrame | None:
    """Canonical events of every event source whose bronze table exists, for a date range."""
    frames = []
    for source in event_sources(ctx.cfg):
        uri = ctx.cfg.table_uri(source.bronze_table)
        if not lake.delta_table_exists(ctx.spark, uri):
            ctx.log.event("source_skipped", source=source.name, reason=f"no table at {uri}")
            continue
        bronze = lake.read_delta(ctx.spark, uri).where(window.contains("event_date"))
        frames.append(source.source.events.to_canonical(bronze))
    return reduce(DataFrame.unionByName, frames) if frames else None


def classified_events(ctx: JobContext, window: RunWindow) -> DataFrame:
    """The window's events, enriched and with their bot verdicts, plus one context day each
    side: a session started the day before may run into the window, and one started on the
    run date may run past midnight (a rerun of an old date must not cut it short)."""
    cs = ctx.cfg.clickstream
    canonical = read_canonical_events(ctx, window.widened(before=1, after=1))
    if canonical is None:
        raise RuntimeError("no bronze event table exists yet: run the ingest jobs first")
    return canonical.transform(
        enrich_events,
        referrer_rules=cs.referrers,
        crawler_pattern=cs.bots.crawler_pattern,
        pseudonym_key=pseudonymisation_key(ctx.cfg),
    ).transform(
        classify_bots,
        rules=cs.bots,
        timeout_minutes=cs.session_timeout_minutes,
        ping_sources=[s.name for s in event_sources(ctx.cfg) if s.source.events.page_pings],
    )


def write_events(ctx: JobContext, events: DataFrame, window: RunWindow) -> dict[str, Any]:
    """Replace the window's human and bot events (independent tables, written side by side)."""
    bots = F.col("bot_rule").isNotNull()
    in_window = window.contains("event_date")

    # No optimized write here: the whole window is replaced on every run, so a date's files
    # never pile up past one write's tasks, and the shuffle that would make them one file per
    # date saved nothing measurable (a sixth less shuffle without it; README, Performance).
    def replace(rows: DataFrame, table: str) -> Any:
        return lambda: lake.replace_slice(
            rows.where(in_window), ctx.cfg.table_uri(table),
            predicate=window.predicate("event_date"), partition_by=["event_date"],
            optimize_write=False,
        )  # fmt: skip

    written = lake.run_concurrently(
        ctx.spark,
        replace(events.where(~bots).drop("bot_rule"), "silver.events"),
        replace(events.where(bots), "silver.bot_events"),
    )
    return dict(zip(("silver.events", "silver.bot_events"), written, strict=True))


def write_sessions(ctx: JobContext, humans: DataFrame, window: RunWindow) -> dict[str, Any]:
    """Sessions and page views of the window; only the dates whose rows changed are
    rewritten. Sessions belong to the date they start on."""
    cs = ctx.cfg.clickstream
    sessionized = humans.transform(assign_sessions, timeout_minutes=cs.session_timeout_minutes)
    with cached(sessionized) as sessionized:
        page_views = build_page_views(
            sessionized,
            heartbeat_seconds=cs.heartbeat_seconds,
            min_visit_seconds=cs.min_visit_seconds,
        )
        tables = {
            "silver.sessions": build_sessions(sessionized, page_views),
            "silver.page_views": page_views,
        }

        def replace_changed(table: str) -> Any:
            return lambda: lake.replace_changed_slices(
                tables[table].where(window.contains("session_date")), ctx.cfg.table_uri(table),
                window=window, window_column="session_date", partition_by=["session_date"],
            )  # fmt: skip

        written = lake.run_concurrently(ctx.spark, *(replace_changed(t) for t in tables))
    return dict(zip(tables, written, strict=True))


def run(ctx: JobContext) -> dict[str, Any]:
    """Rebuild the silver clickstream tables for the run's window."""
    log = ctx.log
    window = RunWindow.ending(ctx.run_date, lookback_days=ctx.cfg.clickstream.lookback_days)
    results: dict[str, Any] = {}
    # Counted as written (the commits' row counts), not by a pass of their own.
    with log.stage("read_enrich_classify", window=window.bounds()):
        events = classified_events(ctx, window)
    with cached(events) as events:
        with log.stage("write_events") as st:
            results.update(write_events(ctx, events, window))
            st.add(
                events_written=results["silver.events"].get("numOutputRows", 0),
                bot_events_written=results["silver.bot_events"].get("numOutputRows", 0),
            )
        with log.stage("sessionize") as st:
            humans = events.where(F.col("bot_rule").isNull()).select(*SESSION_INPUT_COLUMNS)
            results.update(write_sessions(ctx, humans, window))
            for table in ("silver.sessions", "silver.page_views"):
                name = table.split(".")[1]
                st.add(**{f"{name}_dates_replaced": results[table]["datesReplaced"],
                          f"{name}_written": results[table].get("numOutputRows", 0)})  # fmt: skip
    return {
        "run_date": ctx.run_date.isoformat(),
        "window": window.bounds(),
        "events_in_window": results["silver.events"].get("numOutputRows", 0),
        "bot_events_in_window": results["silver.bot_events"].get("numOutputRows", 0),
        "writes": results,
        "tables": {name: ctx.cfg.table_uri(name) for name in results},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
