"""The cluster's layout and the settings a cluster run gets (no process started here)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from decisionlake.config import load_config
from decisionlake.core.spark import LOG_STORE_CLASS, session_conf
from decisionlake.dev.cluster import (
    ClusterError,
    Release,
    SparkCluster,
    applications_of,
    build_spark_home,
    pyspark_home,
    release_executor_files,
    submit_command,
)
from decisionlake.ops.orchestration.asl import DeploySettings, render_state_machine
from decisionlake.ops.pipeline import PipelineDef, driver_outcome, load_pipeline


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DL_S3_ENDPOINT", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5998")


def test_local_cluster_keeps_everything_on_s3_and_leaves_the_cluster_its_settings(
    cluster_env: None,
) -> None:
    cfg = load_config("local-cluster")
    assert cfg.spark.mode == "cluster"
    assert all(p.startswith("s3a://") for p in (cfg.paths.landing, cfg.paths.lake,
                                                 cfg.paths.artifacts))  # fmt: skip
    conf = session_conf(cfg, "job")
    # spark-submit and the cluster bring these; the factory must not override them.
    for key in ("spark.master", "spark.jars", "spark.pyspark.python", "spark.sql.extensions"):
        assert key not in conf, key
    assert conf["spark.sql.warehouse.dir"].startswith("s3a://")  # not the driver's folder
    assert conf["spark.hadoop.fs.defaultFS"] == "s3a://decisionlake-artifacts"  # like HDFS
    assert conf["spark.delta.logStore.s3a.impl"] == LOG_STORE_CLASS
    assert conf["spark.hadoop.decisionlake.delta.dynamodb.table"] == "decisionlake_delta_log"
    assert conf["spark.hadoop.decisionlake.delta.dynamodb.endpoint"] == "http://127.0.0.1:5999"


def test_production_commits_through_dynamodb_on_emrfs(monkeypatch: pytest.MonkeyPatch) -> None:
    # A local stand-in's endpoint left in the environment by another test is not production's.
    for name in ("DL_S3_ENDPOINT", "DL_AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    conf = session_conf(load_config("prod"), "job")
    assert conf["spark.delta.logStore.s3.impl"] == LOG_STORE_CLASS
    assert conf["spark.hadoop.decisionlake.delta.dynamodb.table"] == "decisionlake-prod-delta-log"
    assert "spark.hadoop.decisionlake.delta.dynamodb.endpoint" not in conf  # AWS's own
    assert "spark.hadoop.fs.s3a.endpoint" not in conf


def test_spark_home_looks_like_an_emr_node(tmp_path: Path) -> None:
    extra = tmp_path / "delta-spark_2.13-4.2.0.jar"
    extra.write_bytes(b"")
    home = build_spark_home(tmp_path / "home", jars=[extra],
                            defaults={"spark.master": "spark://127.0.0.1:1"})  # fmt: skip
    assert (home / "bin" / "spark-submit").exists()
    assert (home / "python" / "lib" / "pyspark.zip").exists()  # executors' PYTHONPATH
    names = {p.name for p in (home / "jars").iterdir()}
    assert extra.name in names
    assert {p.name for p in (pyspark_home() / "jars").glob("*.jar")} <= names
    assert (home / "conf" / "spark-defaults.conf").read_text() == (
        "spark.master spark://127.0.0.1:1\n"
    )


def test_cluster_defaults_carry_delta_and_s3_but_never_the_release(tmp_path: Path) -> None:
    defaults = SparkCluster(tmp_path, s3_endpoint="http://127.0.0.1:5999").defaults()
    assert defaults["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert defaults["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:5999"
    # spark-submit opens the release's bucket with these before the job's session exists, and
    # that filesystem stays cached: the stand-in's upload setting must be cluster-wide.
    assert defaults["spark.hadoop.fs.s3a.optimized.copy.from.local.enabled"] == "false"
    assert not any("archives" in k or "pyspark.python" in k for k in defaults)


def test_a_taken_port_is_named_with_what_to_do(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ClusterError, match=f"port {port} .* in use: stop what listens"):
            SparkCluster(tmp_path, master_port=port).start()


def test_submission_is_the_release_and_the_run_date() -> None:
    step = load_pipeline().step("build_sessions")
    command = submit_command("spark://127.0.0.1:7077", Path("/spark"), step,
                             Release("artifacts", "releases/r1"), date(2026, 11, 24))  # fmt: skip
    assert command[:5] == ["/spark/bin/spark-submit", "--master", "spark://127.0.0.1:7077",
                           "--deploy-mode", "client"]  # fmt: skip
    assert "s3a://artifacts/releases/r1/jobs/build_sessions.py" in command
    archives = (
        "spark.archives=s3a://artifacts/releases/r1/pyenv.tar.gz#environment,"
        "s3a://artifacts/releases/r1/conf.zip#decisionlake-conf"
    )
    assert archives in command
    assert command[-4:] == ["--env", "local-cluster", "--run-date", "2026-11-24"]


def test_a_finished_steps_executors_keep_their_logs_and_drop_the_unpacked_release(
    tmp_path: Path,
) -> None:
    """A worker keeps an application's folder; the archives unpacked there go once it ended."""
    log = tmp_path / "driver.log"
    log.write_text(
        "26/12/06 INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID "
        "app-20261206224225-0005\n"
        "26/12/06 INFO StandaloneAppClient: Executor added: app-20261206224225-0005/0\n"
    )
    assert applications_of(log) == ["app-20261206224225-0005"]
    assert applications_of(tmp_path / "never-started.log") == []
    for app in ("app-20261206224225-0005", "app-20261206224226-0006"):  # the second still runs
        for worker in ("worker-1", "worker-2"):
            executor = tmp_path / worker / app / "0"
            (executor / "environment" / "lib").mkdir(parents=True)
            (executor / "decisionlake-conf").mkdir()
            (executor / "stderr").write_text("log")
    assert release_executor_files(tmp_path, applications_of(log)) == 4
    finished = sorted(p.name for p in tmp_path.glob("worker-*/app-*-0005/0/*"))
    assert finished == ["stderr", "stderr"]
    assert len(list(tmp_path.glob("worker-*/app-*-0006/0/environment"))) == 2


def test_the_summary_comes_from_the_drivers_json_log() -> None:
    output = "\n".join([
        "26/12/02 INFO SparkContext: Running Spark",
        '{"event": "job_succeeded", "job": "score", "summary": {"rows": 3}}',
        '{"event": "job_succeeded", "job": "other", "summary": {"rows": 9}}',
    ])  # fmt: skip
    assert driver_outcome(output, "score")[1] == {"rows": 3}
    assert driver_outcome(output, "monitor")[1] == {}
    failed = "INFO starting\nmonitor failed: SNS topic missing\nINFO shutdown hook"
    assert driver_outcome(failed, "monitor") == ("monitor failed: SNS topic missing", {})


def test_local_submission_is_the_emr_step() -> None:
    """The state machine's EMR step and the local spark-submit differ in master and scheme."""
    step = replace(load_pipeline().step("build_sessions"), depends_on=())  # a one-step machine
    rel = Release("decisionlake-artifacts", "cluster-test/releases/current")
    deploy = DeploySettings(env=rel.env, artifacts_uri=rel.settings("s3").artifacts_uri)
    machine = render_state_machine(PipelineDef("p", (step,)), settings=deploy)
    task = next(s for s in machine["States"].values() if s.get("Type") == "Task")
    emr = task["Parameters"]["Step"]["HadoopJarStep"]["Args.$"]
    master = "spark://127.0.0.1:7077"
    local = submit_command(master, Path("/spark"), step, rel, date(2026, 11, 24))
    assert local[1:5] == ["--master", master, "--deploy-mode", "client"]
    expected = [a.replace("s3a://", "s3://") for a in local[5:-2]]
    rendered = "States.Array(" + ", ".join(
        f"'{a}'" for a in ["spark-submit", "--deploy-mode", "cluster", *expected]
    )
    assert emr.startswith(rendered + ", '--run-date', $.run_date)"), (emr, rendered)
