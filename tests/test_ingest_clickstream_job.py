"""ingest --source web end to end on generated data: local Delta and s3a:// on moto."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from decisionlake.config import AppConfig
from decisionlake.dev.generate import build_spec, generate
from decisionlake.io.lake import read_delta, table_version
from decisionlake.jobs import ingest
from tests.conftest import run_ok

from .conftest import REPO, make_config

pytestmark = pytest.mark.integration
END = date(2026, 11, 24)


def _args(cfg: AppConfig, run_date: date, env: str) -> list[str]:
    return [
        "--env",
        env,
        "--run-date",
        run_date.isoformat(),
        "--set",
        f"paths.landing={cfg.paths.landing}",
        "--set",
        f"paths.lake={cfg.paths.lake}",
        "--set",
        f"paths.artifacts={cfg.paths.artifacts}",
    ]


def _last_summary(stderr: str) -> dict:
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return next(r["summary"] for r in reversed(records) if r["event"] == "job_succeeded")


def _check_day_against_manifest(
    spark: SparkSession, cfg: AppConfig, manifest: dict, day: date, summary: dict
) -> None:
    expected = manifest["clickstream_by_arrival_date"][day.isoformat()]
    assert summary["rows_in"] == expected["lines"]
    assert summary["quarantined"] == expected["malformed"]
    assert summary["accepted"] + summary["quarantined"] == summary["rows_in"]
    quarantine = read_delta(spark, cfg.table_uri("bronze.clickstream_quarantine"))
    assert quarantine.where(f"ingest_date = '{day}'").count() == expected["malformed"]


@pytest.fixture(scope="module")
def local_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    cfg = make_config("test", tmp_path_factory.mktemp("lake"))
    spec = build_spec(cfg, end_date=END, days=2, advisors=40, seed=7)
    manifest = generate(spark, cfg, spec)
    # Both days ingested here, once: every test below reads them, in any order.
    summaries = {day: run_ok(ingest, ["--source", "web", *_args(cfg, day, "test")])
                 for day in (spec.start_date, END)}  # fmt: skip
    return cfg, spec, manifest, summaries


def test_ingest_accounts_for_every_line_and_is_idempotent(
    spark: SparkSession, local_lake: tuple, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, spec, manifest, summaries = local_lake
    bronze_uri = cfg.table_uri("bronze.clickstream")
    unique_total = 0
    for day in (spec.start_date, END):
        summary = summaries[day]
        _check_day_against_manifest(spark, cfg, manifest, day, summary)
        if day == spec.start_date:  # an empty table: every unique key of the batch is new
            assert summary["already_present"] == 0
            assert summary["duplicates_in_batch"] == summary["accepted"] - summary["inserted"]
        unique_total += summary["inserted"]
        assert summary["accepted"] == (
            summary["inserted"] + summary["duplicates_in_batch"] + summary["already_present"]
        )
    bronze = read_delta(spark, bronze_uri)
    assert bronze.count() == unique_total
    assert bronze.select("event_id").distinct().count() == unique_total
    assert bronze.where("event_date > '2026-11-24'").count() == 0

    # A Step Functions retry of the same day adds nothing and changes no row.
    version_before = table_version(spark, bronze_uri)
    assert ingest.main(["--source", "web", *_args(cfg, END, "test")]) == 0
    rerun = _last_summary(capfd.readouterr().err)
    assert rerun["inserted"] == 0
    assert rerun["already_present"] == summary["inserted"] + summary["already_present"]
    assert read_delta(spark, bronze_uri).count() == unique_total
    assert table_version(spark, bronze_uri) == version_before  # a no-op MERGE commits nothing
    quarantine = read_delta(spark, cfg.table_uri("bronze.clickstream_quarantine"))
    expected_q = manifest["clickstream_by_arrival_date"][END.isoformat()]["malformed"]
    assert quarantine.where(f"ingest_date = '{END}'").count() == expected_q


def test_replayed_file_adds_nothing(
    spark: SparkSession, local_lake: tuple, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, spec, _, _ = local_lake
    source = Path(cfg.paths.landing) / "clickstream" / f"date={spec.start_date}"
    replay_day = date(2026, 11, 26)  # a day with no landing data of its own yet
    target = Path(cfg.paths.landing) / "clickstream" / f"date={replay_day}"
    target.mkdir(parents=True, exist_ok=True)
    for f in source.glob("*.json.gz"):
        (target / f"replay-{f.name}").write_bytes(f.read_bytes())
    before = read_delta(spark, cfg.table_uri("bronze.clickstream")).count()
    # Beyond max_late_days the old events would be quarantined, so widen the window.
    args = [*_args(cfg, replay_day, "test"), "--set", "ingest.web.max_late_days=5"]
    assert ingest.main(["--source", "web", *args]) == 0
    summary = _last_summary(capfd.readouterr().err)
    assert summary["inserted"] == 0
    assert read_delta(spark, cfg.table_uri("bronze.clickstream")).count() == before


def test_bronze_readable_by_independent_delta_reader(
    spark: SparkSession, local_lake: tuple
) -> None:
    cfg, _, _, _ = local_lake
    uri = cfg.table_uri("bronze.clickstream")
    code = (
        "import sys, json; from deltalake import DeltaTable; "
        f"t = DeltaTable({uri!r}); print(json.dumps(t.to_pyarrow_table().num_rows)); "
        "sys.stdout.flush()"
    )
    # In a child process: the deltalake (Rust) library aborts at interpreter exit with PySpark.
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True
    )
    assert int(out.stdout.strip().splitlines()[0]) == read_delta(spark, uri).count() > 0


def test_missing_landing_day_fails_with_one_line_reason(
    local_lake: tuple, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg, _, _, _ = local_lake
    assert ingest.main(["--source", "web", *_args(cfg, date(2020, 1, 1), "test")]) == 1
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ingest failed: LandingDataMissingError: no input files at")


def test_empty_delivery_fails_before_anything_is_written(
    spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg = make_config("test", tmp_path)
    day = date(2026, 11, 20)
    folder = Path(cfg.paths.landing) / "clickstream" / f"date={day}"
    folder.mkdir(parents=True)
    (folder / "part-0.jsonl").write_bytes(b"")
    assert ingest.main(["--source", "web", *_args(cfg, day, "test")]) == 1
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert "LandingDataMissingError: no readable lines in the files at" in last
    for table in ("bronze.clickstream", "bronze.clickstream_quarantine"):
        assert not Path(cfg.table_uri(table), "_delta_log").exists()


def test_bad_run_date_is_a_usage_error(capfd: pytest.CaptureFixture[str]) -> None:
    assert ingest.main(["--source", "web", *["--env", "test", "--run-date", "2026-13-01"]]) == 2
    assert "expected YYYY-MM-DD" in capfd.readouterr().err.strip().splitlines()[-1]


def test_ingest_on_s3a_against_moto(
    spark: SparkSession, moto_server: object, capfd: pytest.CaptureFixture[str]
) -> None:
    prefix = uuid.uuid4().hex[:8]
    overrides = {
        "paths.landing": f"s3a://decisionlake-landing/{prefix}/landing",
        "paths.lake": f"s3a://decisionlake-lake/{prefix}/lake",
        "paths.artifacts": f"s3a://decisionlake-artifacts/{prefix}/artifacts",
    }
    cfg = make_config("local-s3", Path("/unused"), **overrides)
    assert cfg.table_uri("bronze.clickstream").startswith("s3a://decisionlake-lake/")
    manifest = generate(spark, cfg, build_spec(cfg, end_date=END, days=1, advisors=15, seed=3))
    for attempt in range(2):
        assert ingest.main(["--source", "web", *_args(cfg, END, "local-s3")]) == 0
        summary = _last_summary(capfd.readouterr().err)
        _check_day_against_manifest(spark, cfg, manifest, END, summary)
        if attempt == 1:
            assert summary["inserted"] == 0
    bronze = read_delta(spark, cfg.table_uri("bronze.clickstream"))
    assert bronze.count() == bronze.select("event_id").distinct().count() > 0


@pytest.mark.slow
def test_spark_submit_entry_point(local_lake: tuple) -> None:
    cfg, _, _, _ = local_lake
    out = subprocess.run(
        [
            str(REPO / "scripts" / "spark-submit"),
            str(REPO / "jobs" / "ingest.py"),
            "--source",
            "web",
            *_args(cfg, END, "test"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # spark-submit's PythonRunner merges the Python process's stderr into the driver's stdout.
    summary = _last_summary(out.stdout)
    assert summary["rows_in"] == summary["accepted"] + summary["quarantined"] > 0
