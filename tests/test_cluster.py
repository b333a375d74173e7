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

from decisionlake.config import load_config
from decisionlake.dev import services
from decisionlake.dev.cluster import (
    Release,
    SparkCluster,
    cluster_executor,
    executor_pids,
    kill_executor,
)
from decisionlake.dev.generate import build_spec, generate
from decisionlake.ops import release
from decisionlake.ops.pipeline import (
    PipelineDef,
    Step,
    StepResult,
    in_process_executor,
    load_pipeline,
    run_pipeline,
)
from tests.conftest import lake_args, make_config

# A spark-submit costs about a minute here (two cold JVMs and the archive unpacked twice).
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(2700)]

END = date(2026, 11, 24)  # day D: the day the cluster runs; D-2 and D-1 are its history
HISTORY_DAYS = 2
BACKFILL = END - timedelta(days=5)  # re-ingested beside D's ingest, into the same table
ADVISORS = 150
SEED = 23
PREFIX = "cluster-test"  # of every bucket: no other test's objects are touched
DAILY_UNTIL = "check_quality"  # the daily steps; the model steps follow on day D
FINAL_STEPS = ("train_models", "score", "export_scores", "publish", "monitor")
# Both runs train the same small grids on labels one day out (three days of data).
MODEL_SETTINGS = [
    "models.advisor_propensity.label.horizon_days=1",
    "models.advisor_net_flow.label.horizon_days=1",
    "models.advisor_propensity.candidates=[{estimator: logistic_regression}]",
    "models.advisor_net_flow.candidates=[{estimator: linear_regression}]",
    "models.advisor_segments.candidates=[{estimator: kmeans, grid: {k: [3, 4]}}]",
]
# Logical table -> the columns that identify a row (compared as count + checksum).
KEYS = {
    "bronze.clickstream": ["event_id"],
    "bronze.clickstream_quarantine": ["landing_path", "reason"],  # the file under landing/
    "silver.events": ["source", "event_id"],
    "silver.sessions": ["session_id"],
    "silver.identity_map": ["visitor_id"],
    "silver.advisors": ["advisor_id"],
    "gold.advisor_360": ["as_of_date", "advisor_id"],
}


def _daily(pipeline: PipelineDef) -> PipelineDef:
    keep: list[Step] = []
    for wave in pipeline.levels():
        keep += wave
        if any(s.name == DAILY_UNTIL for s in wave):
            break
    return PipelineDef(pipeline.name, tuple(keep))


def _final(pipeline_name: str) -> PipelineDef:
    steps = [Step(name, name, depends_on=("score",) if name in FINAL_STEPS[2:] else
                  (FINAL_STEPS[0],) if name == "score" else ())
             for name in FINAL_STEPS]  # fmt: skip
    return PipelineDef(pipeline_name, tuple(steps))


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


def _upload(folder: Path, bucket: str, prefix: str, endpoint: str) -> int:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    for path in files:
        _s3(endpoint).upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
    return len(files)


def _lake(name: str) -> list[str]:
    """Settings that point a run at lake ``name`` (landing shared) on the S3 stand-in."""
    return [
        f"paths.landing=s3a://decisionlake-landing/{PREFIX}/landing",
        f"paths.lake=s3a://decisionlake-lake/{PREFIX}/{name}",
        f"paths.artifacts=s3a://decisionlake-artifacts/{PREFIX}/{name}-artifacts",
        *MODEL_SETTINGS,
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
    timings: dict[str, float] = {}
    started = time.perf_counter()
    mlflow = services.MlflowServer(
        root / "mlflow", artifacts_uri=f"s3://decisionlake-artifacts/{PREFIX}/mlflow",
        s3_endpoint=endpoint,
    ).start()  # fmt: skip
    cluster = SparkCluster(root / "spark", s3_endpoint=endpoint).start()
    timings["services_s"] = time.perf_counter() - started
    try:
        t0 = time.perf_counter()
        manifest = release.package(root / "dist")
        release.deploy(root / "dist" / manifest["release"], bucket=services.BUCKETS[2],
                       prefix=f"{PREFIX}/releases", endpoint=endpoint)  # fmt: skip
        timings["package_deploy_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tracking = f"sqlite:///{root}/reference/mlflow/mlflow.db"
        local = make_config("test", root / "reference",
                            **{"services.mlflow_tracking_uri": tracking})  # fmt: skip
        spec = build_spec(local, end_date=END, days=6, advisors=ADVISORS, seed=SEED)
        generate(spark, local, spec)
        _upload(Path(local.paths.landing), "decisionlake-landing", f"{PREFIX}/landing", endpoint)
        timings["generate_s"] = time.perf_counter() - t0
        env = {"MLFLOW_TRACKING_URI": mlflow.tracking_uri, "DL_S3_ENDPOINT": endpoint,
               "DL_SNS_TOPIC_ARN": os.environ.get("DL_SNS_TOPIC_ARN", ""),
               "DL_DELTA_LOG_TABLE": services.DELTA_LOG_TABLE, **services.MOTO_ENV}  # fmt: skip
        work = root / "submissions"
        executor = cluster_executor(
            master_url=cluster.master_url, spark_home=cluster.spark_home,
            release=Release(services.BUCKETS[2], f"{PREFIX}/releases/current"),
            work_root=work, s3_endpoint=endpoint, env=env,
        )  # fmt: skip
        yield {"cluster": cluster, "executor": executor, "work": work, "root": root,
               "timings": timings, "endpoint": endpoint, "reference": local}  # fmt: skip
    finally:
        cluster.stop()
        mlflow.stop()


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
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch for the application (once: a retried step is not killed again)."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

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
                                           "executor": str(log.parent.name)}  # fmt: skip
                            return
            time.sleep(0.3)


def _tables(spark: SparkSession, settings: list[str]) -> dict[str, tuple[int, int]]:
    cfg = load_config("test", overrides=dict(s.split("=", 1) for s in settings[:3]))
    found = {}
    for table, keys in KEYS.items():
        df = spark.read.format("delta").load(cfg.table_uri(table))
        if "source_file" in df.columns:  # s3a://… on the cluster, file:/… in process
            df = df.withColumn("landing_path",
                               F.regexp_extract("source_file", r"/landing/(.+)$", 1))  # fmt: skip
            assert not df.where(F.col("landing_path") == "").limit(1).count(), table
        found[table] = _fingerprint(df, keys)
    return found


def _scores(spark: SparkSession, settings: list[str]) -> dict[str, tuple[int, int]]:
    cfg = load_config("test", overrides=dict(s.split("=", 1) for s in settings[:3]))
    scores = spark.read.format("delta").load(cfg.table_uri("gold.scores"))
    keys = ["model_name", "as_of_date", "advisor_id"]
    names = [r["model_name"] for r in scores.select("model_name").distinct().collect()]
    return {n: _fingerprint(scores.where(F.col("model_name") == n), keys) for n in names}


def test_day_d_on_the_cluster_equals_the_same_day_in_process(
    stack: dict[str, Any], spark: SparkSession
) -> None:
    """D-2 and D-1 in process (the history, copied to S3 for the cluster); then day D, a
    backfill of D-5 beside D's ingest, and the model steps: each a spark-submit onto the
    cluster in S3, and in process on the local copy. Every table must come out the same."""
    pipeline = load_pipeline()
    daily, final = _daily(pipeline), _final(pipeline.name)
    endpoint = stack["endpoint"]
    reference = stack["reference"]
    in_process = in_process_executor("test")
    local = [*lake_args(reference), *MODEL_SETTINGS]
    history = [END - timedelta(days=n) for n in range(HISTORY_DAYS, 0, -1)]
    ran = run_pipeline(daily, history, in_process, settings=local, max_retries=0)
    assert all(r.status == "succeeded" for r in ran), [r for r in ran if r.status != "succeeded"]
    # The cluster's lake starts as a copy of that history (Delta logs hold relative paths).
    assert _upload(Path(reference.paths.lake), "decisionlake-lake", f"{PREFIX}/on-cluster",
                   endpoint)  # fmt: skip

    checkout = Path(__file__).resolve().parents[1]
    before = _checkout_files(checkout)
    killer = ExecutorKiller(stack["cluster"], "decisionlake-build_sessions")
    submit = stack["executor"]
    backfills: list[Any] = []

    def executor(step: Step, run_date: date, settings: Any) -> Any:
        if step.name == "build_sessions":
            killer.start()
        if step.name != "ingest_clickstream":
            return submit(step, run_date, settings)
        # The backfill's driver writes bronze.clickstream at the same time as D's ingest.
        with ThreadPoolExecutor(1) as pool:
            backfill = pool.submit(submit, step, BACKFILL, settings)
            daily_run = submit(step, run_date, settings)
            backfills.append(backfill.result())
        return daily_run

    timings: dict[str, float] = {}

    def progress(result: StepResult) -> None:
        timings[result.step] = round(result.seconds, 1)

    t0 = time.perf_counter()
    on_cluster = run_pipeline(daily, [END], executor, settings=_lake("on-cluster"),
                              parallelism=2, max_retries=1, progress=progress)  # fmt: skip
    on_cluster += run_pipeline(final, [END], executor, settings=_lake("on-cluster"),
                               parallelism=2, max_retries=1, progress=progress)  # fmt: skip
    cluster_s = time.perf_counter() - t0
    failed = [r for r in on_cluster if r.status != "succeeded"]
    assert not failed, failed[0]
    assert backfills and backfills[0][0] == 0, backfills
    assert killer.killed, "no build_sessions executor was running tasks to kill"
    sessions = next(r for r in on_cluster if r.step == "build_sessions")

    # Nothing but logs was written where the drivers ran or under the checkout.
    for container in (stack["work"] / "drivers").iterdir():
        assert sorted(p.name for p in container.iterdir()) == ["driver.log"], container
    new = sorted(str(p) for p in _checkout_files(checkout) - before)
    assert not new, new
    # The executors of the finished steps kept their logs but not the unpacked release.
    workers = stack["cluster"].root
    assert list(workers.glob("worker-*/app-*/*/stderr"))
    assert not list(workers.glob("worker-*/app-*/*/environment"))

    # The reference: the same day, backfill and model steps in this process.
    local_timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lake = local
    code, reason, _ = in_process(pipeline.step("ingest_clickstream"), BACKFILL, lake)
    assert code == 0, reason
    in_process_run: list[StepResult] = []
    for part in (daily, final):
        in_process_run += run_pipeline(part, [END], in_process, settings=lake, max_retries=0,
                                  progress=lambda r: local_timings.update(
                                      {r.step: round(r.seconds, 1)}))  # fmt: skip
    local_s = time.perf_counter() - t0
    failed = [r for r in in_process_run if r.status != "succeeded"]
    assert not failed, failed[0]

    ours, theirs = _tables(spark, _lake("on-cluster")), _tables(spark, lake_args(reference))
    cluster_scores = _scores(spark, _lake("on-cluster"))
    local_scores = _scores(spark, lake_args(reference))
    print(  # the figures first: a failed comparison below keeps them
        json.dumps({"cluster_s": round(cluster_s, 1), "local_s": round(local_s, 1),
                      "setup": {k: round(v, 1) for k, v in stack["timings"].items()},
                      "per_step_cluster": timings, "per_step_local": local_timings,
                      "backfill_s": backfills[0], "executor_killed": killer.killed,
                      "build_sessions_attempts": sessions.attempts,
                      "rows": {t: v[0] for t, v in ours.items()},
                      "rows_in_process": {t: v[0] for t, v in theirs.items()},
                      "scores": {m: v[0] for m, v in cluster_scores.items()},
                      "scores_in_process": {m: v[0] for m, v in local_scores.items()}},
                     indent=1,
                     default=str))  # fmt: skip
    assert ours == theirs
    # Both trained the same grids on the same rows; a model one run promoted and the other
    # did not would show here. Which models beat their baselines on three small days is the
    # data's business (the propensity label is ~2% positive here); at least one must score.
    assert cluster_scores and cluster_scores == local_scores
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    cfg = load_config("test", overrides=dict(s.split("=", 1) for s in _lake("on-cluster")[:3]))
    bronze = cfg.table_uri("bronze.clickstream")
    entries = ddb.query(
        TableName=services.DELTA_LOG_TABLE,
        KeyConditionExpression="tablePath = :t",
        ExpressionAttributeValues={":t": {"S": bronze}},
    )["Items"]
    # D's ingest and the backfill each claimed a commit of bronze.clickstream, both complete.
    assert len(entries) >= 2 and all(e["complete"]["S"] == "true" for e in entries), entries
