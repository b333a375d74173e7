"""Data-quality expectations: one pass per table, counts, samples, severities, the gate."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import SparkSession

from decisionlake.config import Expectation
from decisionlake.quality.rules import evaluate_rows, evaluate_tables, evaluate_volume, row_checks
from tests.conftest import jobs_of

RUN = date(2026, 11, 24)


def test_row_rules_count_failures_and_sample_values(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [
            ("a", "search", 10.0, "https://x", RUN),
            ("b", "carrier-pigeon", -5.0, "ftp://x", RUN),
            ("b", None, 99999.0, None, RUN),
            (None, "direct", 1.0, "https://y", RUN),
        ],
        "id string, channel string, seconds double, url string, day date",
    )
    rules = [
        Expectation(rule="not_null", column="id"),
        Expectation(rule="unique", column="id"),
        Expectation(rule="accepted_values", column="channel", values=["search", "direct"]),
        Expectation(rule="range", column="seconds", min=0, max=14400, severity="warn"),
        Expectation(rule="regex", column="url", pattern="^https?://"),
        Expectation(rule="freshness", column="day", max_age_days=0),
    ]
    got = {r.rule: r for r in evaluate_rows(df, "t", rules, run_date=RUN)}
    assert {k: v.rows_failed for k, v in got.items()} == {
        "not_null": 1, "unique": 1, "accepted_values": 1, "range": 2, "regex": 1, "freshness": 0,
    }  # fmt: skip
    assert got["accepted_values"].sample_failing == "carrier-pigeon"
    assert got["range"].sample_failing == "-5.0, 99999.0" and got["range"].severity == "warn"
    assert all(r.rows_checked == 4 for r in got.values())
    stale = evaluate_rows(df, "t", rules[-1:], run_date=date(2026, 11, 26))[0]
    assert not stale.passed and "needed >= 2026-11-26" in stale.detail


def test_referential_and_volume(spark: SparkSession) -> None:
    scores = spark.createDataFrame(
        [("A", 1), ("B", 2), ("Z", 3), ("Y", 4), (None, 5)], "advisor_id string, n int"
    )
    # The reference holds "A" twice: the join on its distinct keys counts no row twice.
    crm = spark.createDataFrame([("A",), ("A",), ("B",), (None,)], "id string")
    rules = [
        Expectation(rule="referential", column="advisor_id", to_table="crm", to_column="id"),
        Expectation(rule="range", column="n", min=0, max=4),
    ]
    got = {r.rule: r for r in evaluate_rows(scores, "scores", rules, run_date=RUN,
                                            references={"crm": crm})}  # fmt: skip
    referential = got["referential"]
    assert (referential.rows_failed, referential.sample_failing) == (2, "Y, Z")
    assert referential.rows_checked == 5 and referential.detail == "against crm.id"
    assert (got["range"].rows_failed, got["range"].rows_checked) == (1, 5)
    with pytest.raises(ValueError, match="needs the rows of crm"):
        evaluate_rows(scores, "scores", rules, run_date=RUN)
    volume = Expectation(rule="volume", min_ratio=0.5, max_ratio=2.0, severity="warn")
    assert evaluate_volume(100, "t", volume, []).passed  # no history yet
    assert evaluate_volume(100, "t", volume, [90, 110]).passed
    low = evaluate_volume(20, "t", volume, [90, 110])
    assert not low.passed and "ratio 0.20" in low.detail


def test_the_gates_tables_are_evaluated_in_one_query(spark: SparkSession) -> None:
    scores = spark.createDataFrame([("A", 1), ("Z", 7), (None, 2)], "advisor_id string, n int")
    crm = spark.createDataFrame([("A",)], "id string")
    days = spark.createDataFrame([(1, RUN), (1, None)], "id int, day date")
    empty = spark.createDataFrame([], "id int, day date")
    tables = {
        "scores": (scores, [
            Expectation(rule="referential", column="advisor_id", to_table="crm", to_column="id"),
            Expectation(rule="range", column="n", min=0, max=4),
        ]),
        "days": (days, [
            Expectation(rule="unique", column="id"),
            Expectation(rule="freshness", column="day", max_age_days=0),
        ]),
        "empty": (empty, [Expectation(rule="freshness", column="day", max_age_days=0)]),
    }  # fmt: skip
    refs = {"crm": crm}
    checks = [
        row_checks(df, t, rules, run_date=RUN, references=refs) for t, (df, rules) in tables.items()
    ]
    one, fused_jobs = jobs_of(spark, "dq-fused", lambda: evaluate_tables(checks, run_date=RUN))
    each, separate_jobs = jobs_of(spark, "dq-separate", lambda: {
        t: evaluate_rows(df, t, rules, run_date=RUN, references=refs)
        for t, (df, rules) in tables.items()
    })  # fmt: skip
    assert one == each
    failed = {(t, r.rule): (r.rows_failed, r.sample_failing) for t, rs in one.items() for r in rs}
    assert failed == {
        ("scores", "referential"): (1, "Z"), ("scores", "range"): (1, "7"),
        ("days", "unique"): (1, None), ("days", "freshness"): (0, str(RUN)),
        ("empty", "freshness"): (1, "None"),  # no rows: nothing fresh
    }  # fmt: skip
    # One result job for the three tables instead of one each; their scans' stages remain.
    assert fused_jobs <= separate_jobs - 2, (fused_jobs, separate_jobs)


def test_gate_fails_the_job_and_records_results(
    spark: SparkSession,
    tmp_path,
    capfd,
) -> None:
    from decisionlake.io.lake import read_delta
    from decisionlake.jobs import check_quality

    from .conftest import make_config

    cfg = make_config("test", tmp_path)
    spark.createDataFrame(
        [("s1", RUN), ("s1", RUN), ("s2", date(2026, 11, 23))],
        "session_id string, session_date date",
    ).write.format("delta").save(cfg.table_uri("silver.sessions"))
    argv = [
        "--env", "test", "--run-date", RUN.isoformat(),
        "--set", f"paths.lake={cfg.paths.lake}",
        "--set", "quality.expectations={silver.sessions: [{rule: unique, column: session_id}, "
                 "{rule: not_null, column: session_id, severity: warn}]}",
        "--set", "quality.run_window_column={silver.sessions: session_date}",
    ]  # fmt: skip
    assert check_quality.main(argv) == 1
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert "1 blocking expectation(s) failed: silver.sessions.unique(session_id)" in last
    stored = {r["rule"]: r for r in read_delta(spark, cfg.table_uri("ops.dq_results")).collect()}
    assert stored["unique"]["rows_failed"] == 1 and stored["unique"]["rows_checked"] == 2
    assert stored["not_null"]["passed"]


def test_quarantine_rules_move_failing_rows_aside_once(spark: SparkSession, tmp_path) -> None:
    from decisionlake.io.lake import read_delta
    from decisionlake.jobs import check_quality

    from .conftest import make_config

    cfg = make_config("test", tmp_path)
    spark.createDataFrame(
        [
            ("s1", RUN, 60.0),
            ("s2", RUN, 99999.0),
            ("s3", RUN, -1.0),
            ("s4", date(2026, 11, 23), -5.0),
        ],
        "session_id string, session_date date, duration_s double",
    ).write.format("delta").save(cfg.table_uri("silver.sessions"))
    argv = [
        "--env", "test", "--run-date", RUN.isoformat(),
        "--set", f"paths.lake={cfg.paths.lake}",
        "--set", "quality.expectations={silver.sessions: [{rule: range, column: duration_s, "
                 "min: 0, max: 14400, severity: quarantine}]}",
        "--set", "quality.run_window_column={silver.sessions: session_date}",
    ]  # fmt: skip
    for _ in range(2):  # a rerun finds nothing more to move and keeps what was moved
        assert check_quality.main(argv) == 0
    kept = sorted(
        r["session_id"] for r in read_delta(spark, cfg.table_uri("silver.sessions")).collect()
    )
    assert kept == ["s1", "s4"]  # s4 is outside the run's slice
    aside = read_delta(spark, cfg.table_uri("ops.dq_quarantine")).collect()
    assert sorted(r["row"].split('"session_id":"')[1][:2] for r in aside) == ["s2", "s3"]
    assert {r["rule"] for r in aside} == {"range(duration_s)"}


def test_quarantine_is_refused_for_table_level_rules() -> None:
    import pytest

    from decisionlake.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="severity quarantine needs a row rule"):
        load_config("test", overrides={"quality.expectations": {"silver.sessions": [
            {"rule": "unique", "column": "session_id", "severity": "quarantine"}]}})  # fmt: skip
