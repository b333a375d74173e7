"""A new source is one module plus one config entry: delimited item events to silver.sessions.

``tests/fixtures/sources/retail.py`` is the whole source (format, rules, bronze shape, canonical
events); the test enables it with the one entry ``ingest.retail.module`` and runs the generic
ingest job and ``build_sessions`` on a small CSV delivery: one plain file, one gzip file with
CRLF line ends and a quoted header.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.io.lake import read_delta
from decisionlake.jobs import build_sessions, ingest

from .conftest import REPO, make_config, run_ok

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 24)
FIXTURES = REPO / "tests" / "fixtures" / "sources"
ENABLE_RETAIL = ["--set", "ingest.retail.module=tests.fixtures.sources.retail"]


def test_a_delimited_source_added_by_one_module_and_one_entry_reaches_sessions(
    spark: SparkSession, tmp_path: Path, moto_server: object
) -> None:
    cfg = make_config("test", tmp_path)
    delivery = Path(cfg.paths.landing) / "retail" / f"date={DAY}"
    delivery.mkdir(parents=True)
    shutil.copy(FIXTURES / "retail_events_2026-11-24.csv", delivery / "part-0.csv")
    late = (FIXTURES / "retail_events_2026-11-24_late_batch.csv").read_bytes()
    (delivery / "part-1.csv.gz").write_bytes(gzip.compress(late))
    args = [
        "--env", "test", "--run-date", DAY.isoformat(),
        "--set", f"paths.landing={cfg.paths.landing}",
        "--set", f"paths.lake={cfg.paths.lake}",
        "--set", f"paths.artifacts={cfg.paths.artifacts}",
        *ENABLE_RETAIL,
    ]  # fmt: skip

    summary = run_ok(ingest, ["--source", "retail", *args])

    # 16 lines: 2 headers (one quoted, CRLF), 8 accepted (one a duplicate delivery), 6 rejected.
    assert summary["rows_in"] == 16
    assert summary["header_lines"] == 2
    assert summary["accepted"] == 8 and summary["duplicates_in_batch"] == 1
    assert summary["inserted"] == 7
    assert summary["quarantined_by_reason"] == {
        "BAD_TYPE_TIMESTAMP": 1,
        "EMPTY_LINE": 1,
        "MISSING_TIMESTAMP": 1,
        "TOO_LATE": 1,
        "UNKNOWN_EVENT_TYPE": 1,
        "WRONG_FIELD_COUNT": 1,
    }
    assert summary["files"] == {
        "in": 2, "read": 2, "quarantined": 0, "by_reason": {}, "lines_in_quarantined_files": 0,
    }  # fmt: skip
    # Tables by convention: no catalog entry was added.
    enabled = make_config(
        "test", tmp_path, **{"ingest.retail.module": "tests.fixtures.sources.retail"}
    )
    bronze_uri = enabled.table_uri("bronze.retail_events")
    assert bronze_uri == f"{cfg.paths.lake}/bronze/retail_events"
    assert read_delta(spark, bronze_uri).count() == 7
    quarantine = read_delta(spark, enabled.table_uri("bronze.retail_events_quarantine"))
    assert quarantine.count() == 6  # the header lines are not quarantined
    assert quarantine.where(F.col("raw_line").contains("timestamp")).count() == 0

    run_ok(build_sessions, args)

    sessions = read_delta(spark, enabled.table_uri("silver.sessions")).where("source = 'retail'")
    per_visitor = {
        r["visitor_id"]: (r["sessions"], r["events"])
        for r in sessions.groupBy("visitor_id")
        .agg(F.count("*").alias("sessions"), F.sum("events").alias("events"))
        .collect()
    }
    # v1: four events within 13 minutes; v2: two views two hours apart; v3 late in the day.
    assert per_visitor == {"v1": (1, 4), "v2": (2, 2), "v3": (1, 1)}
    events = read_delta(spark, enabled.table_uri("silver.events")).where("source = 'retail'")
    assert {r["event_type"] for r in events.select("event_type").distinct().collect()} == {
        "page_view", "click", "form_submit",
    }  # fmt: skip


def test_an_unknown_source_is_a_usage_error_naming_the_enabled_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = ingest.main(["--source", "nope", "--env", "test", "--run-date", DAY.isoformat()])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "ingest.nope: unknown source (enabled: crm, ga4, trades, web)" in err


def test_a_module_without_a_source_is_a_usage_error() -> None:
    argv = ["--source", "x", "--env", "test", "--run-date", DAY.isoformat(),
            "--set", "ingest.x.module=decisionlake.sources.lines"]  # fmt: skip
    from decisionlake.core.runtime import run_module

    code, reason, _ = run_module(ingest, argv)
    assert code == 2 and "defines no SOURCE" in reason
