"""build_sessions: bronze events of every source -> silver events, bots, sessions, page views.

Each run recomputes the run date and ``clickstream.lookback_days`` before it (the window), with
one more day read as context so sessions crossing into the window start where they really
start. Events and bot events of the window are replaced (replaceWhere); sessions and page views
are merged so that only sessions touched by late data change and untouched ones are not
rewritten.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.clickstream.adapters import discover
from decisionlake.clickstream.bots import classify_bots
from decisionlake.clickstream.enrich import enrich_events
from decisionlake.clickstream.sessions import assign_sessions, build_page_views, build_sessions
from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake

NAME = "build_sessions"


def read_canonical_events(ctx: JobContext, first_day: str, last_day: str) -> DataFrame | None:
    """Canonical events of every adapter whose bronze table exists, for a date range."""
    frames = []
    for adapter in discover():
        uri = ctx.cfg.table_uri(adapter.bronze_table)
        if not lake.delta_table_exists(ctx.spark, uri):
            ctx.log.event("source_skipped", source=adapter.source, reason=f"no table at {uri}")
            continue
        bronze = lake.read_delta(ctx.spark, uri).where(
            F.col("event_date").between(first_day, last_day)
        )
        frames.append(adapter.to_canonical(bronze))
    return reduce(DataFrame.unionByName, frames) if frames else None


def run(ctx: JobContext) -> dict[str, Any]:
    """Rebuild the silver clickstream tables for the run's window."""
    cfg, log = ctx.cfg, ctx.log
    cs = cfg.clickstream
    window_start = ctx.run_date - timedelta(days=cs.lookback_days)
    context_start = window_start - timedelta(days=1)
    first, last = window_start.isoformat(), ctx.run_date.isoformat()
    in_window = F.col("event_date").between(first, last)

    # Counted as written (the commits' row counts), not by a pass of their own.
    with log.stage("read_enrich_classify", window=[first, last]):
        # One day past the window too: a session started on the run date may run past
        # midnight, and a rerun of an old date must not cut it short.
        after = (ctx.run_date + timedelta(days=1)).isoformat()
        canonical = read_canonical_events(ctx, context_start.isoformat(), after)
        if canonical is None:
            raise RuntimeError("no bronze event table exists yet: run the ingest jobs first")
        events = (
            canonical.transform(
                enrich_events,
                referrer_rules=cs.referrers,
                crawler_pattern=cs.bots.crawler_pattern,
                pseudonym_key=pseudonymisation_key(cfg),
            )
            .transform(
                classify_bots,
                rules=cs.bots,
                timeout_minutes=cs.session_timeout_minutes,
                ping_sources=[a.source for a in discover() if a.page_pings],
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
    window_predicate = f"event_date >= '{first}' AND event_date <= '{last}'"
    results: dict[str, Any] = {}
    with log.stage("write_events") as st:
        humans = events.where(F.col("bot_rule").isNull()).drop("bot_rule")
        # Independent tables: written side by side (see lake.run_concurrently).
        results["silver.events"], results["silver.bot_events"] = lake.run_concurrently(
            ctx.spark,
            lambda: lake.replace_slice(
                humans.where(in_window),
                cfg.table_uri("silver.events"),
                predicate=window_predicate,
                partition_by=["event_date"],
            ),
            lambda: lake.replace_slice(
                events.where(F.col("bot_rule").isNotNull() & in_window),
                cfg.table_uri("silver.bot_events"),
                predicate=window_predicate,
                partition_by=["event_date"],
            ),
        )
        st.add(
            events_written=results["silver.events"].get("numOutputRows", 0),
            bot_events_written=results["silver.bot_events"].get("numOutputRows", 0),
        )

    with log.stage("sessionize") as st:
        sessionized = humans.transform(
            assign_sessions, timeout_minutes=cs.session_timeout_minutes
        ).persist(StorageLevel.MEMORY_AND_DISK)
        page_views = build_page_views(
            sessionized,
            heartbeat_seconds=cs.heartbeat_seconds,
            min_visit_seconds=cs.min_visit_seconds,
        )
        sessions = build_sessions(sessionized, page_views)
        session_window = f"t.session_date >= '{first}' AND t.session_date <= '{last}'"
        keep = F.col("session_date").between(first, last)
        results["silver.sessions"], results["silver.page_views"] = lake.run_concurrently(
            ctx.spark,
            lambda: lake.merge_window(
                sessions.where(keep),
                cfg.table_uri("silver.sessions"),
                key="session_id",
                window=session_window,
                partition_by=["session_date"],
                compare_columns=[c for c in sessions.columns if c != "session_id"],
            ),
            lambda: lake.merge_window(
                page_views.where(keep),
                cfg.table_uri("silver.page_views"),
                key="page_view_id",
                window=session_window,
                partition_by=["session_date"],
                compare_columns=[c for c in page_views.columns if c != "page_view_id"],
            ),
        )
        for table in ("silver.sessions", "silver.page_views"):
            m = results[table]
            st.add(
                **{
                    f"{table.split('.')[1]}_{k}": m.get(f"numTargetRows{k.title()}", 0)
                    for k in ("inserted", "updated", "deleted")
                }
            )
    sessionized.unpersist()
    events.unpersist()
    return {
        "run_date": last,
        "window": [first, last],
        "events_in_window": results["silver.events"].get("numOutputRows", 0),
        "bot_events_in_window": results["silver.bot_events"].get("numOutputRows", 0),
        "writes": results,
        "tables": {name: cfg.table_uri(name) for name in results},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
