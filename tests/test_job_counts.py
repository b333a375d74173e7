"""Spark jobs per step on a warm daily run: the fixed cost every step pays whatever the data.

Counted on the shared history's last day (a warm run: every table exists, the same code path as
production). Job counts are deterministic for given data and settings, so they are held to
budgets here; time is shown by the benchmarks, never asserted.

The target is at most ``TARGET`` jobs a step (#16). Steps still above it have a ceiling at the
count measured when the ceiling was set, so a change can only lower them; lower the ceiling
when a step gets cheaper, and drop it from ``OVER_TARGET`` once the step meets the target.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import HISTORY_END

pytestmark = pytest.mark.integration

TARGET = 25
# Measured on this history (300 advisors, 6 days; 2026-12-02: ingest_text 70, build_sessions 63,
# build_text_features 60, build_identity 48, build_advisor_360 43, check_quality 37), with a
# few jobs of headroom: steps run two at a time and share Delta snapshots, so a count can move
# by one or two. Adaptive execution is on, so each shuffle stage of a query is a job of its
# own. What the jobs are made of: the README, Performance.
# 2026-12-03: build_advisor_360 counts its slice while writing it (no read-back): 43 -> 35.
# check_quality 37 -> 40: the read-back had computed gold.advisor_360's new snapshot, which
# check_quality reused in this shared session; it now builds that snapshot itself (the pair
# went from 80 to 75 jobs; in separate submits, as on EMR, every step builds its own).
# 2026-12-04: the Observation is gone again (it broke random forests in a shared session, see
# lake.replace_slice): build_advisor_360 reads its slice back, 41; check_quality 37.
# build_sessions 63 -> 66: its count pass went (counted from the commits), and ua-parser came in
# (the distinct agents' aggregate and their broadcast back: a few jobs, whatever the events).
# 2026-12-04 (session 26): an upsert MERGE's source is found once and handed over as a local
# checkpoint (it had been computed three times: count, emptiness, MERGE): ingest_text 79 -> 54,
# build_text_features 60 -> 54. build_sessions 66 -> 84, knowingly: its sessions and page
# views MERGE no longer scans the whole table's history for WHEN NOT MATCHED BY SOURCE (the
# changes are found by two anti-joins over the window first, ~8 jobs), and URLs and referrers
# are parsed once per distinct value (two broadcasts, 4 jobs); at 1.1M events its enrichment
# went from 26 s to 13 s. Turning adaptive execution off halves every count here and leaves
# the day's time unchanged (44.7 s vs 43.7 s at this size): jobs are not the fixed cost.
# Headroom of four: CI counted three more for ingest_text than this machine did on the same
# code (82 vs 79), and the 360 has been seen at 41 and 43.
# 2026-12-05 (session 30): sessions and page views replace only their changed dates (a per-date
# summary of each side, no anti-joins, no MERGE): build_sessions 84 -> 62. The 360 counts its
# slice from the cached rows it then writes (no read-back): 39 -> 36; check_quality reuses the
# row rules' count for the volume and referential rules: 35 -> 31.
# 2026-12-06 (session 32): the fitted text pipeline has three stages instead of eight (the
# preparation is one SQL statement; the unused IDF is gone), so loading it for scoring takes
# 11 jobs instead of 23: build_text_features 54 -> 42.
# 2026-12-06 (session 35): check_quality evaluates its referential rule in the row rules' pass
# (a left join on the reference's distinct keys): 32 -> 29. build_identity counts its map from
# the cached rows it writes (no read-back): 48 -> 46; the 360 then builds the map's new
# snapshot itself in this shared session (measured 40 and 42: the pair is unchanged here, and in
# separate submits, as on EMR, the read-back is simply gone).
# 2026-12-06 (session 36): the identity graph's first round groups the edges (no labels to join
# yet), each round's new label is one grouping of the own and the neighbours' labels (not a
# join back), and the edges are partitioned once: build_identity 46 -> 36. check_quality
# evaluates the row rules of all its tables in one query (one result, not one a table): 29 -> 27.
OVER_TARGET = {
    "ingest_text": 58,
    "build_sessions": 66,
    "build_text_features": 46,
    "build_identity": 39,
    "build_advisor_360": 43,
    "check_quality": 30,
}


def test_every_step_stays_within_its_spark_job_budget(history: dict[str, Any]) -> None:
    counts = {step: n for (day, step), n in history["job_counts"].items() if day == HISTORY_END}
    print("spark jobs per step on", HISTORY_END, json.dumps(counts, sort_keys=True))
    ran = {r.step for r in history["results"] if r.run_date == HISTORY_END}
    assert set(counts) == ran, "every step of the day was counted"
    assert sum(counts.values()) > 0, "the counter saw the day's jobs"
    over = {
        step: (n, OVER_TARGET.get(step, TARGET))
        for step, n in counts.items()
        if n > OVER_TARGET.get(step, TARGET)
    }
    assert not over, f"steps over their Spark job budget (count, budget): {over}"
