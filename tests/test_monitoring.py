"""Drift (PSI, KS, Jensen-Shannon) computed in Spark, and the monitor job on a champion."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.io.lake import overwrite_table, read_delta
from decisionlake.jobs import monitor, train_models
from decisionlake.models import registry
from decisionlake.quality.drift import drift

from .conftest import HISTORY_END


def test_drift_flags_a_shifted_sample_and_not_a_resampled_one(spark: SparkSession) -> None:
    reference = spark.range(20_000).select(F.randn(1).alias("x"), F.rand(2).alias("share"))
    same = spark.range(20_000).select(F.randn(3).alias("x"), F.rand(4).alias("share"))
    shifted = spark.range(20_000).select(
        (F.randn(5) + 0.8).alias("x"), (F.rand(6) ** 3).alias("share")
    )
    stable = {d.column: d for d in drift(reference, same, ["x", "share"])}
    moved = {d.column: d for d in drift(reference, shifted, ["x", "share"])}
    assert all(d.band == "stable" and d.psi < 0.02 and d.ks < 0.03 for d in stable.values())
    assert all(d.band == "significant" and d.ks > 0.2 and d.js > 0.05 for d in moved.values())
    assert moved["x"].reference_rows == moved["x"].current_rows == 20_000


def _summary(stderr: str) -> dict:
    for line in reversed(stderr.splitlines()):
        if line.startswith("{"):
            record = json.loads(line)
            if record["event"] == "job_succeeded" and record["job"] == "monitor":
                return record["summary"]
    raise AssertionError(stderr[-3000:])


@pytest.mark.integration
@pytest.mark.slow
def test_monitor_alerts_on_a_shifted_day_only(
    spark: SparkSession, history: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    cfg = history["cfg"]
    base = ["--env", "test"]
    for setting in history["settings"]:
        base += ["--set", setting]
    if registry.current_champion(cfg, "advisor_propensity") is None:
        argv = [*base, "--run-date", HISTORY_END.isoformat(), "--model", "advisor_propensity"]
        assert train_models.main(argv) == 0
    champion = registry.current_champion(cfg, "advisor_propensity")
    reference_day = monitor._reference_date(cfg, champion)
    snapshots = read_delta(spark, cfg.table_uri("gold.advisor_360"))
    reference = snapshots.where(F.col("as_of_date") == F.lit(reference_day))
    copy_uri = str(tmp_path / "advisor_360_copy")
    calm, shifted = date(2026, 12, 1), date(2026, 12, 2)
    moved = reference.withColumns(
        {
            c: F.col(c) * 4 + 3
            for c in (
                "sessions_7d",
                "sessions_30d",
                "downloads_7d",
                "downloads_30d",
                "engaged_minutes_30d",
            )
        }
    )
    overwrite_table(
        reference.unionByName(reference.withColumn("as_of_date", F.lit(calm))).unionByName(
            moved.withColumn("as_of_date", F.lit(shifted))
        ),
        copy_uri,
    )
    pointed = [*base, "--set", f"models.advisor_propensity.source.table={copy_uri}",
               "--model", "advisor_propensity"]  # fmt: skip
    capfd.readouterr()
    assert monitor.main([*pointed, "--run-date", calm.isoformat()]) == 0
    quiet = _summary(capfd.readouterr().err)
    assert quiet["alerts"] == [] and quiet["models"]["advisor_propensity"]["score_band"] == "stable"
    assert monitor.main([*pointed, "--run-date", shifted.isoformat()]) == 0
    loud = _summary(capfd.readouterr().err)
    result = loud["models"]["advisor_propensity"]
    assert {"sessions_30d", "downloads_30d"} <= set(result["significant"])
    assert loud["alerts"] and loud["sns_message_id"]  # published to the (moto) alert topic
    client = registry.mlflow_client(cfg).MlflowClient()
    tags = client.get_model_version("advisor_propensity", champion.version).tags
    assert tags.get("needs_retraining") == "true"
    table = read_delta(spark, cfg.table_uri("ops.model_monitoring"))
    by_day = {
        r["run_date"]: r["n"]
        for r in table.where("band = 'significant'").groupBy("run_date").count()
        .withColumnRenamed("count", "n").collect()
    }  # fmt: skip
    assert by_day.get(shifted, 0) >= 2 and calm not in by_day

    # Decay and outcomes: scores of an earlier day whose labels have matured by the run date.
    from decisionlake.jobs import score

    scored_day = monitor.date.fromisoformat(champion_test_day := str(reference_day))
    assert (
        score.main([*base, "--run-date", champion_test_day, "--model", "advisor_propensity"]) == 0
    )
    capfd.readouterr()
    assert monitor.main([*base, "--run-date", HISTORY_END.isoformat(),
                         "--model", "advisor_propensity"]) == 0  # fmt: skip
    decay = _summary(capfd.readouterr().err)["models"]["advisor_propensity"]["decay"]
    assert 0.5 < decay["areaUnderROC"] <= 1.0 and decay["top_decile_lift"] > 0
    outcomes = read_delta(spark, cfg.table_uri("gold.score_outcomes")).where(
        F.col("as_of_date") == F.lit(scored_day)
    )
    rows = outcomes.collect()  # ten deciles at most
    assert sum(r["advisors"] for r in rows) == 300 and sum(r["converted"] for r in rows) > 0

    # Below its baseline on matured labels: alerted and tagged. An oracle column (the realised
    # label itself) as the baseline is a rule no model can beat.
    from decisionlake.models.training_sets import with_labels

    spec = cfg.models["advisor_propensity"]
    trades = read_delta(spark, cfg.table_uri("bronze.fund_trades"))
    oracle = with_labels(
        snapshots, trades, source=spec.source, label=spec.label, label_through=HISTORY_END
    ).select("advisor_id", "as_of_date", F.col("label").alias("oracle"))
    oracle_uri = str(tmp_path / "advisor_360_oracle")
    overwrite_table(snapshots.join(oracle, ["advisor_id", "as_of_date"], "left"), oracle_uri)
    assert 0.0 <= decay["baseline_areaUnderROC"] <= 1.0  # the shipped rule, on the same rows
    capfd.readouterr()
    argv = [*base, "--run-date", HISTORY_END.isoformat(), "--model", "advisor_propensity",
            "--set", f"models.advisor_propensity.source.table={oracle_uri}",
            "--set", "models.advisor_propensity.baseline=coalesce(oracle, 0.0)"]  # fmt: skip
    assert monitor.main(argv) == 0
    below = _summary(capfd.readouterr().err)
    assert below["below_baseline"] and "below its baseline" in below["below_baseline"][0]
    assert below["sns_message_id"]
    tags = client.get_model_version("advisor_propensity", champion.version).tags
    assert tags.get("below_baseline") == HISTORY_END.isoformat()
