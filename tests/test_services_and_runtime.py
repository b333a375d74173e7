"""Local service stand-ins (real servers on loopback) and the runtime's clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import psycopg2
import pytest
from pyspark.sql import SparkSession

from decisionlake.config import load_config
from decisionlake.core.jars import MissingJarsError, local_jars
from decisionlake.core.logs import JobLogger
from decisionlake.core.spark import session_conf
from decisionlake.dev import services

pytestmark = pytest.mark.integration


def _client(name: str, moto_server: services.MotoServer):
    return boto3.client(name, endpoint_url=moto_server.endpoint, region_name="us-east-1")


def test_moto_serves_s3_dynamodb_secrets_and_sns(moto_server: services.MotoServer) -> None:
    buckets = {b["Name"] for b in _client("s3", moto_server).list_buckets()["Buckets"]}
    assert set(services.BUCKETS) <= buckets
    tables = _client("dynamodb", moto_server).list_tables()["TableNames"]
    assert services.DELTA_LOG_TABLE in tables
    # The project's provisioning, read back through the project's own clients.
    from decisionlake.core.aws import _fetch_key as _fetch

    key = _fetch(services.PSEUDONYMISATION_SECRET_ID, moto_server.endpoint, "us-east-1")
    assert len(key) >= 32
    sns = _client("sns", moto_server)
    provisioned = moto_server.provision()  # again: a no-op, not an error
    assert provisioned["sns_topic_arn"] in {t["TopicArn"] for t in sns.list_topics()["Topics"]}
    assert provisioned["delta_log_table"] == services.DELTA_LOG_TABLE
    # ... and a second provisioning keeps the key (tokens stay joinable across runs).
    _fetch.cache_clear()
    assert _fetch(services.PSEUDONYMISATION_SECRET_ID, moto_server.endpoint, "us-east-1") == key


@pytest.mark.timeout(180)
def test_s3a_copies_a_local_folder_to_the_s3_stand_in(
    spark: SparkSession, moto_server: services.MotoServer, tmp_path: Path
) -> None:
    """What mlflow.spark.load_model does on a cluster: a local model folder copied to the
    default filesystem (S3). The transfer-manager path hung against the stand-in."""
    (tmp_path / "model" / "stages").mkdir(parents=True)
    (tmp_path / "model" / "metadata.json").write_text("{}")
    (tmp_path / "model" / "stages" / "part-0").write_bytes(b"x" * 70_000)
    jvm = spark._jvm
    target = jvm.org.apache.hadoop.fs.Path("s3a://decisionlake-artifacts/s3a-copy-test/model")
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(str(tmp_path / "model")),
                         target)  # fmt: skip
    listed = _client("s3", moto_server).list_objects_v2(
        Bucket="decisionlake-artifacts", Prefix="s3a-copy-test/"
    )
    sizes = {
        o["Key"].split("model/", 1)[1]: o["Size"]
        for o in listed.get("Contents", [])
        if not o["Key"].endswith("/")
    }  # fmt: skip (S3A's directory markers)
    assert sizes == {"metadata.json": 2, "stages/part-0": 70_000}


def test_embedded_postgres_accepts_tcp_connections(postgres: services.EmbeddedPostgres) -> None:
    with psycopg2.connect(postgres.url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS t (id int primary key)")
        cur.execute("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")
        cur.execute("SELECT count(*), current_database(), version() FROM t")
        count, database, version = cur.fetchone()
    assert (count, database) == (1, services.PG_DATABASE)
    assert version.startswith("PostgreSQL")


def test_mlflow_server_tracks_a_run(tmp_path: Path) -> None:
    import mlflow

    server = services.MlflowServer(tmp_path / "mlflow").start()
    try:
        client = mlflow.MlflowClient(tracking_uri=server.tracking_uri)
        experiment = client.create_experiment("smoke")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "auc", 0.75)
        assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.75}
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None


def test_missing_jars_error_names_the_setup_command(tmp_path: Path) -> None:
    with pytest.raises(MissingJarsError, match=r"delta-spark_2\.13.*run `make jars`"):
        local_jars(tmp_path)


def test_local_session_conf_wires_delta_jars_and_s3a() -> None:
    cfg = load_config("local-s3", environ={"DL_S3_ENDPOINT": "http://127.0.0.1:9"})
    conf = session_conf(cfg, "x")
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "delta-spark_2.13-4.2.0.jar" in conf["spark.jars"]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_emr_session_conf_adds_nothing_emr_provides() -> None:
    conf = session_conf(load_config("prod", environ={}), "x")
    assert not any(
        k.startswith(("spark.jars", "spark.hadoop.fs.s3a", "spark.master")) for k in conf
    )
    assert "spark.sql.extensions" not in conf


def test_stage_log_lines_carry_duration_and_figures(capsys: pytest.CaptureFixture[str]) -> None:
    log = JobLogger("job", "run-1")
    with log.stage("read") as stage:
        stage.add(rows_in=3)
    with pytest.raises(ValueError), log.stage("write"):
        raise ValueError("disk full")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [x["event"] for x in lines] == [
        "stage_start",
        "stage_end",
        "stage_start",
        "stage_failed",
    ]
    assert lines[1]["rows_in"] == 3 and lines[1]["duration_s"] >= 0
    assert lines[3]["error"] == "ValueError: disk full"


def test_run_date_from_a_schedule_is_the_day_before_it_fired() -> None:
    from datetime import date

    from decisionlake.core.runtime import job_parser

    parser = job_parser("x")
    fired = parser.parse_args(["--run-date", "scheduled:2026-11-26T06:00:00Z"])
    assert fired.run_date == date(2026, 11, 25)
    assert parser.parse_args(["--run-date", "2026-11-24"]).run_date == date(2026, 11, 24)
    with pytest.raises(SystemExit):
        parser.parse_args(["--run-date", "scheduled:yesterday"])


def test_stopping_postgres_after_a_restart_clears_a_dead_servers_pid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine restart leaves postmaster.pid behind; pg_ctl refused it and every later
    ``decisionlake services start`` failed until the file was removed by hand."""
    import subprocess

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    data = tmp_path / "postgres"
    data.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    (data / "postmaster.pid").write_text(f"{gone.pid}\n{data}\n")
    services.EmbeddedPostgres(data, port=1).stop()
    assert not (data / "postmaster.pid").exists()
