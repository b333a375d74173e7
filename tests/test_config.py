"""Configuration: layering, interpolation, validation errors, the table catalog and its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from decisionlake.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def _conf(tmp_path: Path, base: str, overlay: str, env: str = "x") -> Path:
    (tmp_path / "base").mkdir()
    (tmp_path / env).mkdir()
    (tmp_path / "base" / "app.yaml").write_text(base)
    (tmp_path / env / "app.yaml").write_text(overlay)
    return tmp_path


MINIMAL_BASE = """
paths: {landing: /l, lake: /k, artifacts: /a}
tables: {bronze.t: "{lake}/bronze/t"}
"""


def test_overlay_overrides_base_and_set_overrides_overlay(tmp_path: Path) -> None:
    conf = _conf(tmp_path, MINIMAL_BASE, "spark: {shuffle_partitions: 3}\n")
    cfg = load_config("x", conf_dir=conf, overrides=["spark.driver_memory=1g"])
    assert cfg.spark.shuffle_partitions == 3
    assert cfg.spark.driver_memory == "1g"
    assert cfg.table_uri("bronze.t") == "/k/bronze/t"


def test_env_interpolation_with_default_and_value(tmp_path: Path) -> None:
    conf = _conf(tmp_path, MINIMAL_BASE, 'paths: {lake: "${LAKE_ROOT:-/fallback}"}\n')
    assert load_config("x", conf_dir=conf, environ={}).paths.lake == "/fallback"
    assert load_config("x", conf_dir=conf, environ={"LAKE_ROOT": "/set"}).paths.lake == "/set"


def test_missing_env_var_names_key_path(tmp_path: Path) -> None:
    conf = _conf(tmp_path, MINIMAL_BASE, 'storage: {s3_endpoint: "${NOT_SET_ANYWHERE}"}\n')
    with pytest.raises(ConfigError, match=r"storage\.s3_endpoint: environment variable NOT_SET"):
        load_config("x", conf_dir=conf, environ={})


def test_unknown_key_names_key_path(tmp_path: Path) -> None:
    conf = _conf(tmp_path, MINIMAL_BASE, "spark: {shuffle_partitons: 3}\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitons: unknown key"):
        load_config("x", conf_dir=conf)


def test_wrong_type_names_key_path(tmp_path: Path) -> None:
    conf = _conf(tmp_path, MINIMAL_BASE, "spark: {shuffle_partitions: many}\n")
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: expected an integer"):
        load_config("x", conf_dir=conf)


def test_missing_required_value(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "tables: {}\n", "paths: {landing: /l, lake: /k}\n")
    with pytest.raises(ConfigError, match=r"paths\.artifacts: missing required value"):
        load_config("x", conf_dir=conf)


def test_unknown_environment_lists_available() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'nope'.*local-s3"):
        load_config("nope")


def test_unknown_table_name() -> None:
    with pytest.raises(ConfigError, match=r"tables\.silver\.nope: unknown table"):
        load_config("local").table_uri("silver.nope")


@pytest.mark.parametrize("env", ["local", "local-s3", "test", "dev", "prod"])
def test_every_shipped_environment_loads(env: str) -> None:
    cfg = load_config(env, environ={"DL_S3_ENDPOINT": "http://127.0.0.1:1"})
    assert cfg.env == env
    assert set(cfg.catalog()) >= {"bronze.clickstream", "bronze.clickstream_quarantine"}


def test_catalog_schemes_per_environment() -> None:
    local = load_config("local", environ={"DL_DATA_DIR": "/data"}).catalog()
    s3 = load_config("local-s3", environ={"DL_S3_ENDPOINT": "http://127.0.0.1:1"}).catalog()
    prod = load_config("prod", environ={}).catalog()
    assert local["bronze.clickstream"] == "/data/lake/bronze/clickstream"
    assert s3["bronze.clickstream"] == "s3a://decisionlake-lake/lake/bronze/clickstream"
    assert prod["bronze.clickstream"].startswith("s3://decisionlake-prod-lake/")


def test_tables_cli_prints_json_catalog() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "decisionlake.cli", "tables", "--env", "local", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    catalog = json.loads(out.stdout)
    assert catalog == load_config("local").catalog()


def test_tables_cli_config_error_is_one_line() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "decisionlake.cli",
            "tables",
            "--env",
            "local",
            "--set",
            "spark.bogus=1",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("decisionlake: ConfigError: spark.bogus")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("spark.shuffle_partitions", "0", r"spark\.shuffle_partitions: 0 must be > 0"),
        ("spark.driver_memory", "abc", r"spark\.driver_memory: 'abc' must be a size"),
        ("ingest.web.min_event_date", "not-a-date", r"min_event_date: .* must be a date"),
        ("ingest.web.max_late_days", "-1", r"max_late_days: -1 must be >= 0"),
        ("clickstream.lookback_days", "-2", r"clickstream\.lookback_days: -2 must be >= 0"),
        ("generator.late_rate", "1.5", r"generator\.late_rate: 1\.5 must be between 0 and 1"),
    ],
)
def test_values_out_of_range_fail_at_start_up_with_their_key_path(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("test", overrides=[f"{key}={value}"])


def test_a_value_out_of_range_is_a_usage_error_of_the_job(capsys: pytest.CaptureFixture) -> None:
    from decisionlake.jobs import ingest

    argv = ["--env", "test", "--run-date", "2026-11-24", "--set", "spark.shuffle_partitions=0"]
    assert ingest.main(["--source", "web", *argv]) == 2  # before any session is built: no hang
    assert "spark.shuffle_partitions: 0 must be > 0" in capsys.readouterr().err


def test_the_cli_exits_quietly_when_its_output_pipe_closes() -> None:
    reader_gone = subprocess.Popen(
        [sys.executable, "-m", "decisionlake.cli", "tables", "--json", "--env", "test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader_gone.stdout is not None and reader_gone.stderr is not None
    reader_gone.stdout.close()  # like `| head` that has already exited: every write fails
    err = reader_gone.stderr.read().decode()
    assert reader_gone.wait(timeout=60) == 0 and "Traceback" not in err, err


def test_run_help_lists_the_jobs_and_the_common_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "decisionlake.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert "\n  ingest --source SOURCE  (sources: crm, ga4, trades, web)\n" in done.stdout
    assert "\n  ingest_text\n" in done.stdout and "--run-date YYYY-MM-DD" in done.stdout


def test_a_missing_service_says_which_command_starts_it(spark) -> None:
    import botocore.exceptions

    from decisionlake.core.runtime import execute

    def needs_aws(ctx) -> dict:
        raise botocore.exceptions.NoCredentialsError()

    argv = ["--env", "test", "--run-date", "2026-11-24"]
    code, reason, _ = execute("export_scores", argv, needs_aws, spark=spark)
    assert code == 1
    assert "Unable to locate credentials" in reason
    assert "decisionlake services start" in reason and "source .run/services.env" in reason
