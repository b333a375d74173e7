"""The pipeline benchmark's figures from the Spark UI's job list (pure helpers, no Spark)."""

from __future__ import annotations

import pytest

from decisionlake.dev.bench.pipeline import busy_seconds, job_kind


def _job(start: str, end: str) -> dict[str, str]:
    return {"submissionTime": f"2026-12-03T10:00:{start}GMT",
            "completionTime": f"2026-12-03T10:00:{end}GMT"}  # fmt: skip


def test_busy_seconds_is_the_union_of_overlapping_and_separate_jobs() -> None:
    jobs = [
        _job("01.000", "03.000"),
        _job("02.000", "04.500"),
        _job("10.000", "10.250"),
        {"submissionTime": "2026-12-03T10:00:20.000GMT"},  # still running: not counted
    ]
    assert busy_seconds(jobs) == pytest.approx(3.5 + 0.25)
    assert busy_seconds([]) == 0.0


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("Delta: build_sessions: Compute snapshot for version: 1", "delta_snapshot_and_skipping"),
        ("Delta: build_sessions: Filtering files for query", "delta_snapshot_and_skipping"),
        ("build_sessions - MERGE operation - materialize source", "delta_merge"),
        ("Delta: build_sessions: Writing Deletion Vectors for modified data", "delta_merge"),
        ("build_sessions", "queries_and_writes"),
        ("", "queries_and_writes"),
    ],
)
def test_job_kinds_follow_deltas_job_descriptions(description: str, kind: str) -> None:
    assert job_kind(description) == kind
