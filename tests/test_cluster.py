"""The suite as EMR runs it: every step a spark-submit of the deployed release onto a Spark
standalone cluster (executors in other JVMs), S3 (moto) the only storage they share, Delta
commits arbitrated by DynamoDB. The same days run in process (``local``) give the reference.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from decisionlake import release, services
from decisionlake.cluster import (
    Release,
    SparkCluster,
    cluster_executor,
    executor_pids,
    kill_executor,
    submit_command,
)
from decisionlake.config import load_config
from decisionlake.generate import build_spec, generate
from decisionlake.orchestration.asl import DeploySettings, render_state_machine
from decisionlake.pipeline import (
    PipelineDef,
    Step,
    StepResult,
    in_process_executor,
    load_pipeline,
    run_pipeline,
)
from tests.conftest import lake_args, make_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

END = date(2026, 11, 24)
DAYS = 3
ADVISORS = 60
SEED = 23
PREFIX = "cluster-test"  # of every bucket: no other test's objects are touched
DAILY_UNTIL = "check_quality"  # the daily steps every day; models after the last day
FINAL_STEPS = ("train_models", "score", "export_scores", "publish", "monitor")
# Logical table -> the columns that identify a row (compared as count + checksum).
KEYS = {
    "bronze.clickstream": ["event_id"],
    "bronze.clickstream_quarantine": ["source_file", "reason"],
    "silver.events": ["source", "event_id"],
    "silver.sessions": ["session_id"],
    "silver.identity_map": ["visitor_id"],
    "silver.advisors": ["advisor_id"],
    "gold.advisor_360": ["as_of_date", "advisor_id"],
    "gold.scores": ["model_name", "as_of_date", "advisor_id"],
}


def _daily(pipeline: PipelineDef) -> PipelineDef:
    keep: list[Step] = []
    for wave in pipeline.levels():
        keep += wave
        if any(s.name == DAILY_UNTIL for s in wave):
            break
    return PipelineDef(pipeline.name, tuple(keep))


def _upload(folder: Path, bucket: str, prefix: str, endpoint: str) -> int:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    for path in files:
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
    return len(files)


def _s3_settings() -> list[str]:
    return [
        f"paths.landing=s3a://decisionlake-landing/{PREFIX}/landing",
        f"paths.lake=s3a://decisionlake-lake/{PREFIX}/lake",
        f"paths.artifacts=s3a://decisionlake-artifacts/{PREFIX}/artifacts",
    ]


@pytest.fixture(scope="module")
def stack(
    spark: SparkSession,
    tmp_path_factory: pytest.TempPathFactory,
    moto_server: services.MotoServer,
    warehouse_secret: dict,
) -> Any:
    """Cluster, MLflow with S3 artifacts, the release deployed, the landing data in S3."""
    root = tmp_path_factory.mktemp("cluster")
    endpoint = moto_server.endpoint
    started = time.perf_counter()
    mlflow = services.MlflowServer(
        root / "mlflow", artifacts_uri=f"s3://decisionlake-artifacts/{PREFIX}/mlflow",
        s3_endpoint=endpoint,
    ).start()  # fmt: skip
    cluster = SparkCluster(root / "spark", s3_endpoint=endpoint).start()
    timings = {"services_s": time.perf_counter() - started}
    try:
        t0 = time.perf_counter()
        manifest = release.package(root / "dist")
        release.deploy(root / "dist" / manifest["release"], bucket=services.BUCKETS[2],
                       prefix=f"{PREFIX}/releases", endpoint=endpoint)  # fmt: skip
        timings["package_deploy_s"] = time.perf_counter() - t0
        # One generation, two copies: local files for the reference run, S3 for the cluster.
        tracking = f"sqlite:///{root}/local/mlflow/mlflow.db"
        local = make_config("test", root / "local", **{"services.mlflow_tracking_uri": tracking})
        spec = build_spec(local, end_date=END, days=DAYS + 1, advisors=ADVISORS, seed=SEED)
        generate(spark, local, spec)
        _upload(Path(local.paths.landing), "decisionlake-landing", f"{PREFIX}/landing", endpoint)
        work = root / "submissions"
        env = {"MLFLOW_TRACKING_URI": mlflow.tracking_uri, "DL_S3_ENDPOINT": endpoint,
               "DL_SNS_TOPIC_ARN": os.environ.get("DL_SNS_TOPIC_ARN", ""),
               "DL_DELTA_LOG_TABLE": services.DELTA_LOG_TABLE, **services.MOTO_ENV}  # fmt: skip
        executor = cluster_executor(
            master_url=cluster.master_url, spark_home=cluster.spark_home,
            release=Release(services.BUCKETS[2], f"{PREFIX}/releases/current"),
            work_root=work, s3_endpoint=endpoint, env=env,
        )  # fmt: skip
        yield {"cluster": cluster, "executor": executor, "local": local, "work": work,
               "root": root, "timings": timings, "spec": spec}  # fmt: skip
    finally:
        cluster.stop()
        mlflow.stop()


def _dates(spec: Any) -> list[date]:
    # The generated range starts a day earlier than the pipeline's: that first day is only
    # the backfill of the two-writer test.
    return [spec.start_date + timedelta(days=n) for n in range(1, DAYS + 1)]


def _final(pipeline_name: str) -> PipelineDef:
    steps, previous = [], ()
    for name in FINAL_STEPS:
        steps.append(Step(name, name, depends_on=previous))
        previous = ("train_models",) if name == "train_models" else ("score",)
    return PipelineDef(pipeline_name, tuple(steps))


def _fingerprint(df: DataFrame, keys: list[str]) -> tuple[int, int]:
    missing = [k for k in keys if k not in df.columns]
    assert not missing, (missing, df.columns)
    row = df.select(
        F.count(F.lit(1)).alias("rows"),
        F.coalesce(F.sum(F.xxhash64(*keys).cast("decimal(38,0)")), F.lit(0)).alias("sum"),
    ).first()
    return int(row["rows"]), int(row["sum"])


def _checkout_files(checkout: Path) -> set[Path]:
    """Files of the checkout, less tool caches (venv, jars, git, pytest's own)."""
    skip = {".git", ".venv", ".cache", ".pytest_cache", "__pycache__", ".ruff_cache"}
    return {p for p in checkout.rglob("*") if not skip & set(p.relative_to(checkout).parts)}


class ExecutorKiller:
    """Kills one executor JVM of ``app_name`` once it is running tasks (kill -9)."""

    def __init__(self, cluster: SparkCluster, app_name: str) -> None:
        self.cluster, self.app_name = cluster, app_name
        self.killed: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not self.killed:
            apps = [a for a in self.cluster.status().get("activeapps", [])
                    if a.get("name") == self.app_name]  # fmt: skip
            for app in apps:
                for log in self.cluster.root.glob(f"worker-*/{app['id']}/*/stderr"):
                    if "Got assigned task" in log.read_text(errors="replace"):
                        pids = executor_pids(app["id"])
                        if pids:
                            kill_executor(pids[0])
                            self.killed = {"app": app["id"], "pid": pids[0],
                                           "executor_log": str(log)}  # fmt: skip
                            return
            time.sleep(0.3)


def test_the_pipeline_on_the_cluster_equals_the_local_run(
    stack: dict[str, Any], spark: SparkSession
) -> None:
    pipeline = load_pipeline()
    daily, final = _daily(pipeline), _final(pipeline.name)
    dates = _dates(stack["spec"])
    checkout = Path(__file__).resolve().parents[1]
    before = _checkout_files(checkout)

    # The cluster: every step its own spark-submit; build_sessions of the last day loses an
    # executor JVM mid-step.
    killer = ExecutorKiller(stack["cluster"], "decisionlake-build_sessions")
    inner = stack["executor"]

    def executor(step: Step, run_date: date, settings: Any) -> Any:
        if step.name == "build_sessions" and run_date == dates[-1]:
            killer.thread.start()
        return inner(step, run_date, settings)

    timings: dict[str, list[float]] = {}

    def progress(result: StepResult) -> None:
        timings.setdefault(result.step, []).append(round(result.seconds, 1))

    t0 = time.perf_counter()
    on_cluster = run_pipeline(daily, dates, executor, settings=_s3_settings(), parallelism=2,
                              max_retries=1, progress=progress)  # fmt: skip
    failed = [r for r in on_cluster if r.status != "succeeded"]
    assert not failed, failed[0]
    on_cluster += run_pipeline(final, [dates[-1]], executor, settings=_s3_settings(),
                               parallelism=2, max_retries=1, progress=progress)  # fmt: skip
    cluster_s = time.perf_counter() - t0
    failed = [r for r in on_cluster if r.status != "succeeded"]
    assert not failed, failed[0]
    assert killer.killed, "no build_sessions executor was running tasks to kill"
    sessions = next(r for r in on_cluster if r.step == "build_sessions" and r.run_date == dates[-1])

    # Nothing but logs was written where the drivers ran or under the checkout.
    for container in (stack["work"] / "drivers").iterdir():
        assert sorted(p.name for p in container.iterdir()) == ["driver.log"], container
    new = sorted(str(p) for p in _checkout_files(checkout) - before)
    assert not new, new

    # The reference: the same days, in this process.
    local = stack["local"]
    local_timings: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    settings = lake_args(local)
    in_process = in_process_executor("test")
    reference = run_pipeline(daily, dates, in_process, settings=settings, max_retries=0,
                             progress=lambda r: local_timings.setdefault(r.step, []).append(
                                 round(r.seconds, 1)))  # fmt: skip
    reference += run_pipeline(final, [dates[-1]], in_process, settings=settings, max_retries=0,
                              progress=lambda r: local_timings.setdefault(r.step, []).append(
                                  round(r.seconds, 1)))  # fmt: skip
    local_s = time.perf_counter() - t0
    failed = [r for r in reference if r.status != "succeeded" and r.step != "export_scores"]
    assert not failed, failed[0]

    cluster_cfg = load_config("local-cluster", overrides=dict(
        s.split("=", 1) for s in _s3_settings()))  # fmt: skip
    compared = {}
    for table, keys in KEYS.items():
        ours = _fingerprint(spark.read.format("delta").load(cluster_cfg.table_uri(table)), keys)
        theirs = _fingerprint(spark.read.format("delta").load(local.table_uri(table)), keys)
        compared[table] = ours[0]
        assert ours == theirs, (table, ours, theirs)
    assert compared["gold.scores"] > 0
    print(json.dumps({"cluster_s": round(cluster_s, 1), "local_s": round(local_s, 1),
                      "setup": {k: round(v, 1) for k, v in stack["timings"].items()},
                      "per_step_cluster": timings, "per_step_local": local_timings,
                      "executor_killed": killer.killed, "build_sessions_attempts":
                      sessions.attempts, "rows": compared}, indent=1))  # fmt: skip


def test_two_drivers_commit_to_one_table_through_dynamodb(stack: dict[str, Any],
                                                         spark: SparkSession) -> None:  # fmt: skip
    """The daily ingest of day D and a backfill of an earlier day, submitted together."""
    spec = stack["spec"]
    backfill, today = spec.start_date, spec.start_date + timedelta(days=DAYS)
    ingest = load_pipeline().step("ingest_clickstream")
    settings = [*_s3_settings()]
    settings[1] = f"paths.lake=s3a://decisionlake-lake/{PREFIX}/two-writers"
    # The table exists before the race (two first commits would both be a CREATE).
    first = stack["executor"](ingest, today - timedelta(days=1), settings)
    assert first[0] == 0, first[1]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda d: (d, stack["executor"](ingest, d, settings)),
                             [today, backfill]))  # fmt: skip
    for run_date, (code, reason, _) in runs:
        assert code == 0, (run_date, reason)
    inserted = {d: summary["inserted"] for d, (_, _, summary) in runs}
    inserted["first"] = first[2]["inserted"]
    cfg = load_config("local-cluster", overrides=dict(s.split("=", 1) for s in settings))
    table = spark.read.format("delta").load(cfg.table_uri("bronze.clickstream"))
    # Every row either driver inserted is there, once: no commit was lost or duplicated.
    assert table.count() == sum(inserted.values()), inserted
    assert table.select("event_id").distinct().count() == table.count()
    history = spark.sql(f"DESCRIBE HISTORY delta.`{cfg.table_uri('bronze.clickstream')}`")
    writes = history.where(F.col("operation") != "CREATE TABLE").count()
    assert writes >= 2, history.select("version", "operation").collect()
    ddb = boto3.client("dynamodb", endpoint_url=os.environ["DL_S3_ENDPOINT"])
    entries = ddb.query(
        TableName=services.DELTA_LOG_TABLE,
        KeyConditionExpression="tablePath = :t",
        ExpressionAttributeValues={":t": {"S": cfg.table_uri("bronze.clickstream")}},
    )["Items"]
    assert entries and all(e["complete"]["S"] == "true" for e in entries), entries


def test_local_submission_is_the_emr_step(stack: dict[str, Any]) -> None:
    """The state machine's EMR step and the local spark-submit differ in master and scheme."""
    step = load_pipeline().step("build_sessions")
    rel = Release(services.BUCKETS[2], f"{PREFIX}/releases/current")
    machine = render_state_machine(
        PipelineDef("p", (step,)), settings=DeploySettings(env=rel.env,
                                                          artifacts_uri=rel.settings("s3").artifacts_uri),
    )  # fmt: skip
    task = next(s for s in machine["States"].values() if s.get("Type") == "Task")
    emr = task["Parameters"]["Step"]["HadoopJarStep"]["Args.$"]
    local = submit_command(stack["cluster"].master_url, stack["cluster"].spark_home, step, rel,
                           END)  # fmt: skip
    assert local[1:5] == ["--master", stack["cluster"].master_url, "--deploy-mode", "client"]
    expected = [a.replace("s3a://", "s3://") for a in local[5:-2]]
    rendered = "States.Array(" + ", ".join(f"'{a}'" for a in ["spark-submit", "--deploy-mode",
                                                              "cluster", *expected])  # fmt: skip
    assert emr.startswith(rendered + ", '--run-date', $.run_date)"), (emr, rendered)
