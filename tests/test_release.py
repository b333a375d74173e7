"""Packaging and deployment to (moto) S3, and the notebook entry point."""

from __future__ import annotations

import json
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import boto3
import pytest
from pyspark.sql import SparkSession

from decisionlake.dev import services
from decisionlake.io.lake import overwrite_table
from decisionlake.ops import release
from decisionlake.ops.notebook import connect

from .conftest import REPO

pytestmark = pytest.mark.integration


def test_package_and_deploy_to_s3(moto_server: services.MotoServer, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    result = subprocess.run(
        [str(REPO / "scripts" / "package"), "--out", str(out), "--no-env"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    manifest = json.loads((folder / "release.json").read_text())
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    assert manifest["git_sha"].startswith(sha) and folder.name == manifest["release"]
    assert manifest["version"] == release.project_version()
    names = set(manifest["files"])
    assert {"jobs.zip", "conf.zip", "state_machine.emr.json", "cloudformation.json",
            "jars/decisionlake-delta-logstore.jar"} <= names  # fmt: skip
    assert any(n.startswith("decisionlake-") and n.endswith(".whl") for n in names)
    with zipfile.ZipFile(folder / "conf.zip") as bundle:
        shipped = set(bundle.namelist())
    assert {"base/app.yaml", "prod/app.yaml", "local-cluster/app.yaml",
            "models/advisor_propensity.yaml", "pipeline.yaml"} <= shipped  # fmt: skip
    requirements = " ".join(release.runtime_requirements())
    assert "pyspark" not in requirements and "delta-spark" not in requirements  # EMR's
    assert "mlflow-skinny" in requirements  # the client only: the release's env stays small
    # Every configured warehouse backend's driver travels with the release (export_scores on
    # the local cluster failed "No module named 'psycopg2'" before).
    assert "psycopg2-binary" in requirements and "redshift-connector" in requirements

    deployed = subprocess.run(
        [str(REPO / "scripts" / "deploy"), str(folder), "--bucket", "decisionlake-artifacts",
         "--endpoint", moto_server.endpoint],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert "spark-submit --deploy-mode cluster" in deployed.stdout
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1")
    for base in (f"releases/{manifest['release']}", "releases/current"):
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="decisionlake-artifacts",
                                                      Prefix=base)["Contents"]}  # fmt: skip
        assert f"{base}/release.json" in keys and f"{base}/jobs/score.py" in keys
    head = s3.head_object(Bucket="decisionlake-artifacts", Key="releases/current/conf.zip")
    assert head["Metadata"]["git-sha"] == manifest["git_sha"]


def test_connect_gives_a_session_and_tables_by_name(spark: SparkSession, tmp_path: Path) -> None:
    overrides = {"paths.lake": str(tmp_path / "lake"), "paths.landing": str(tmp_path / "l"),
                 "paths.artifacts": str(tmp_path / "a")}  # fmt: skip
    session, tables = connect("test", overrides=overrides)
    assert session is spark  # the active session is reused
    frame = spark.createDataFrame(
        [("A1", date(2026, 11, 24))], "advisor_id string, as_of_date date"
    )
    overwrite_table(frame, tables.uri("gold.advisor_360"))
    assert tables.existing() == ["gold.advisor_360"]
    assert tables["gold.advisor_360"].count() == 1
    with pytest.raises(KeyError, match="no Delta table"):
        tables["gold.scores"]
