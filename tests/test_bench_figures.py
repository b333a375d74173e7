"""The benchmarks' figures: Spark UI job lists, scaling between scales (pure, no Spark)."""

from __future__ import annotations

import pytest

from decisionlake.dev.bench.pipeline import busy_seconds, job_kind, step_of


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


def _scale(events: int, seconds: float, rss: float) -> dict:
    return {
        "events_last_day": events,
        "pipeline_s": seconds,
        "driver_rss_mb": rss,
        "driver_heap_after_gc_mb": rss / 4,
        "driver_heap_after_release_mb": rss / 8,
        "steps": {"build_sessions": {"s": seconds}},
    }


@pytest.mark.parametrize("order", [1, -1])
def test_scaling_compares_the_smallest_scale_with_the_largest_in_any_order(order: int) -> None:
    from decisionlake.dev.bench.scale import scaling

    found = scaling([_scale(125_000, 10.0, 1000.0), _scale(1_000_000, 100.0, 1000.0)][::order])
    assert found["data_factor"] == 8.0
    assert found["steps"]["build_sessions"] == {"time_factor": 10.0, "super_linear": True}
    assert found["driver_rss_factor"] == 1.0
    assert found["driver_heap_after_release_factor"] == 1.0


def test_a_reused_landing_zone_serves_only_the_scale_whose_advisors_it_holds(tmp_path) -> None:
    import json

    from decisionlake.dev.bench.scale import _fitting_landing

    small, large = tmp_path / "small", tmp_path / "large"
    for landing, advisors in ((small, 6_250), (large, 50_000)):
        (landing / "_manifests").mkdir(parents=True)
        summary = {"summary": {"advisors": advisors}}
        (landing / "_manifests" / "generate-2026-10-25-31d-seed7.json").write_text(
            json.dumps(summary)
        )
    both = f"{small},{large}"
    assert _fitting_landing(both, 1_000_000) == large
    assert _fitting_landing(both, 125_000) == small
    assert _fitting_landing(str(large), 125_000) is None
    assert _fitting_landing(None, 1_000_000) is None
    assert _fitting_landing(str(tmp_path / "elsewhere"), 1_000_000) is None


def test_a_saved_history_is_restored_as_it_was_and_a_half_save_is_never_taken(
    tmp_path, monkeypatch
) -> None:
    import json
    import shutil

    from decisionlake.dev.bench import scale
    from decisionlake.dev.bench.scale import HISTORY_RECORD, _restore_history, _save_history

    root, saved = tmp_path / "run", tmp_path / "history"
    (root / "lake" / "t").mkdir(parents=True)
    (root / "lake" / "t" / "part-0.parquet").write_bytes(b"rows")
    _save_history(root, saved, {"commit": "abc", "setup": {"history_s": 1.0}})
    # The measured day changes the run folder; a restore brings back the history as saved.
    (root / "lake" / "t" / "part-1.parquet").write_bytes(b"the measured day")
    record = _restore_history(saved, root)
    assert record == {"commit": "abc", "setup": {"history_s": 1.0}}
    assert sorted(p.name for p in (root / "lake" / "t").iterdir()) == ["part-0.parquet"]

    # A save cut off half way leaves no history where there was none ...
    copy = shutil.copytree

    def copy_then_fail(*args, **kw):  # a copy cut off half way
        copy(*args, **kw)
        raise OSError("disk full")

    monkeypatch.setattr(scale.shutil, "copytree", copy_then_fail)
    with pytest.raises(OSError):
        _save_history(root, tmp_path / "other", {"commit": "def", "setup": {}})
    assert not (tmp_path / "other" / HISTORY_RECORD).exists()
    # ... and leaves the one saved before as it was.
    with pytest.raises(OSError):
        _save_history(root, saved, {"commit": "def", "setup": {}})
    assert json.loads((saved / HISTORY_RECORD).read_text())["commit"] == "abc"


def test_must_sums_the_steps_seconds_and_names_the_first_failure() -> None:
    from types import SimpleNamespace

    from decisionlake.dev.bench.scale import must

    def step(name: str, status: str) -> SimpleNamespace:
        return SimpleNamespace(step=name, run_date="2026-11-23", status=status, seconds=2.5,
                               reason=f"{name} said no")  # fmt: skip

    assert must([step("a", "succeeded"), step("b", "succeeded")], "history") == 5.0
    with pytest.raises(RuntimeError, match="daily chain: b on 2026-11-23: b said no"):
        must([step("a", "succeeded"), step("b", "failed"), step("c", "failed")], "daily chain")


def test_a_commit_belongs_to_the_step_running_then_else_to_the_nearest() -> None:
    spans = {"ingest_web": (10.0, 20.0), "ingest_trades": (20.5, 30.0)}
    assert step_of(spans, 15.0) == "ingest_web"
    assert step_of(spans, 20.4) == "ingest_trades"  # between the two: the nearer one
    assert step_of(spans, 29.9) == "ingest_trades"
    assert step_of(spans, 31.0) == "ingest_trades"  # stamped just after the step ended
