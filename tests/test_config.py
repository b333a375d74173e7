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
