"""The pipeline definition and the local runner's rules (fake executors, no Spark)."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from decisionlake.config import ConfigError
from decisionlake.ops.pipeline import (
    date_range,
    format_summary,
    load_pipeline,
    main_exit_code,
    run_pipeline,
)


def _write(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"pipeline:\n  name: t\n  defaults: {{retries: 2, backoff_seconds: 5}}\n  steps:\n{steps}"
    )
    return path


def test_shipped_pipeline_waves() -> None:
    waves = [[s.name for s in wave] for wave in load_pipeline().levels()]
    assert waves == [
        ["ingest_crm", "ingest_clickstream", "ingest_outcomes"],
        ["ingest_text", "build_sessions"],
        ["build_identity", "build_text_features"],
        ["build_advisor_360"],
        ["check_quality"],
        ["score"],
        ["build_call_list", "export_scores", "publish", "monitor"],
        ["export_call_list"],
    ]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("    - {name: a, job: nope}\n", r"steps\[0\]\.job: unknown job 'nope'"),
        ("    - {name: a, job: ingest_text, depends_on: [zz]}\n", "unknown step 'zz'"),
        ("    - {name: a, job: ingest_text}\n    - {name: a, job: publish}\n", "duplicate"),
        ("    - {name: a, job: ingest_text, depends_on: [b]}\n"
         "    - {name: b, job: ingest_text, depends_on: [a]}\n", "cycle"),
        ("    - {name: a, job: ingest_text, retry: 3}\n", r"steps\[0\]\.retry: unknown key"),
    ],
)  # fmt: skip
def test_invalid_definitions_are_refused(tmp_path: Path, steps: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline(_write(tmp_path, steps))


DAG = (
    "    - {name: a, job: ingest_text}\n"
    "    - {name: b, job: ingest, args: [--source, web]}\n"
    "    - {name: c, job: ingest_text, depends_on: [a]}\n"
    "    - {name: d, job: build_sessions, depends_on: [b, c]}\n"
)


@pytest.mark.parametrize("parallelism", [1, 3])
def test_failed_step_skips_dependants_and_stops_the_backfill(
    tmp_path: Path, parallelism: int
) -> None:
    calls: list[tuple[str, date]] = []
    sleeps: list[float] = []

    def executor(step, run_date, settings):
        calls.append((step.name, run_date))
        if step.name == "c" and run_date == date(2026, 11, 2):
            return 1, "c failed: boom", {}
        return 0, "", {"ok": True}

    pipeline = load_pipeline(_write(tmp_path, DAG))
    days = date_range(date(2026, 11, 1), date(2026, 11, 3))
    results = run_pipeline(pipeline, days, executor, sleep=sleeps.append, parallelism=parallelism)
    by_key = {(r.run_date.day, r.step): r for r in results}
    assert all(by_key[(1, s)].status == "succeeded" for s in "abcd")
    assert by_key[(2, "c")].status == "failed" and by_key[(2, "c")].attempts == 3
    assert sleeps == [5, 10]  # exponential backoff between the retries
    assert by_key[(2, "d")].status == "skipped" and "dependency c" in by_key[(2, "d")].reason
    assert by_key[(2, "b")].status == "succeeded"  # independent of the failure
    assert not [c for c in calls if c[1].day == 3]  # the backfill stopped after day 2
    assert main_exit_code(results) == 1
    assert format_summary(results).splitlines()[-1] == "FAILED: c on 2026-11-02: c failed: boom"


def test_independent_steps_run_at_the_same_time(tmp_path: Path) -> None:
    pipeline = load_pipeline(_write(tmp_path, DAG))
    meet = threading.Barrier(2, timeout=20)  # b and c wait here for each other

    def executor(step, run_date, settings):
        if step.name in ("b", "c"):
            meet.wait()  # BrokenBarrierError (a failed test) unless both are running
        return 0, "", {}

    results = run_pipeline(pipeline, [date(2026, 11, 1)], executor, parallelism=2)
    assert [(r.step, r.status) for r in results] == [
        ("a", "succeeded"), ("b", "succeeded"), ("c", "succeeded"), ("d", "succeeded")
    ]  # fmt: skip


@pytest.mark.parametrize("parallelism", [1, 2])
def test_a_broken_executor_fails_its_step_not_the_run(tmp_path: Path, parallelism: int) -> None:
    pipeline = load_pipeline(_write(tmp_path, DAG))

    def executor(step, run_date, settings):
        if step.name == "b":
            raise OSError("spark-submit not found")
        return 0, "", {}

    results = run_pipeline(pipeline, [date(2026, 11, 1)], executor, parallelism=parallelism,
                           max_retries=0)  # fmt: skip
    status = {r.step: (r.status, r.reason) for r in results}
    assert status["b"] == ("failed", "OSError: spark-submit not found")
    assert status["a"][0] == status["c"][0] == "succeeded" and status["d"][0] == "skipped"


def test_usage_errors_are_not_retried_and_retries_can_be_capped(tmp_path: Path) -> None:
    pipeline = load_pipeline(_write(tmp_path, DAG))
    attempts: list[str] = []

    def usage_error(step, run_date, settings):
        attempts.append(step.name)
        return 2, "bad config", {}

    run_pipeline(pipeline, [date(2026, 11, 1)], usage_error, sleep=lambda _: None)
    assert attempts == ["a", "b"]  # once each; c and d skipped

    flaky: list[str] = []

    def always_fails(step, run_date, settings):
        flaky.append(step.name)
        return 1, "down", {}

    run_pipeline(pipeline, [date(2026, 11, 1)], always_fails, sleep=lambda _: None, max_retries=0)
    assert flaky == ["a", "b"]


def test_settings_are_passed_to_every_step(tmp_path: Path) -> None:
    seen = []

    def record(step, run_date, settings):
        seen.append(tuple(settings))
        return 0, "", {}

    pipeline = load_pipeline(_write(tmp_path, DAG))
    run_pipeline(pipeline, [date(2026, 11, 1)], record, settings=["spark.shuffle_partitions=2"])
    assert seen == [("spark.shuffle_partitions=2",)] * 4
    with pytest.raises(ValueError, match="before"):
        date_range(date(2026, 11, 2), date(2026, 11, 1))
