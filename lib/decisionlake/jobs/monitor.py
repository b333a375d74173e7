"""monitor: drift of each champion's features and scores, decay once labels mature, outcomes.

- Drift: the champion's test snapshot (its reference) against the run date's snapshot: PSI,
  KS and Jensen-Shannon per numeric feature and for the score (both scored by the champion).
- Decay: past scores whose label window has closed, against the realised labels (ROC-AUC,
  top-decile lift).
- Outcomes: realised conversion by score decile per scored date (``gold.score_outcomes``).

Results replace the run date's slice of ``ops.model_monitoring``; a PSI at or above
``monitoring.psi_alert`` publishes to the alert topic and tags the model version
``needs_retraining``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.aws import aws_client
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.models import evaluate as ev
from decisionlake.models import registry
from decisionlake.models.estimators import LABEL
from decisionlake.models.scoring import predict
from decisionlake.models.sources import (
    model_job_parser,
    read_ref,
    selected_models,
    uses_label_column,
)
from decisionlake.models.training import with_labels
from decisionlake.quality.drift import drift

NAME = "monitor"
MONITORING_SCHEMA = T.StructType(
    [
        T.StructField("run_date", T.DateType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.StringType(), False),
        T.StructField("kind", T.StringType(), False),  # feature | score | performance
        T.StructField("name", T.StringType(), False),
        T.StructField("reference_date", T.DateType()),
        T.StructField("current_date", T.DateType()),
        T.StructField("psi", T.DoubleType()),
        T.StructField("ks", T.DoubleType()),
        T.StructField("js", T.DoubleType()),
        T.StructField("band", T.StringType()),
        T.StructField("value", T.DoubleType()),
        T.StructField("rows", T.LongType()),
        T.StructField("run_id", T.StringType(), False),
    ]
)


def _reference_date(cfg: Any, champion: registry.Champion) -> date:
    run = registry.mlflow_client(cfg).MlflowClient().get_run(champion.run_id)
    return date.fromisoformat(run.data.params["test_dates"].split(",")[-1])


def _outcomes(scores: DataFrame, labelled: DataFrame) -> DataFrame:
    """Realised conversion per model, as-of date and decile."""
    return (
        scores.join(
            labelled.select("advisor_id", "as_of_date", LABEL), ["advisor_id", "as_of_date"]
        )
        .groupBy("model_name", "model_version", "as_of_date", "decile")
        .agg(
            F.count("*").alias("advisors"),
            F.sum(LABEL).cast("long").alias("converted"),
            F.avg(LABEL).alias("conversion_rate"),
            F.avg("score").alias("mean_score"),
        )
    )


def run(ctx: JobContext) -> dict[str, Any]:
    """Monitor every model with a champion."""
    cfg, day, spark = ctx.cfg, ctx.run_date, ctx.spark
    rows: list[tuple] = []
    alerts: list[str] = []
    below_baseline: list[str] = []
    summary: dict[str, Any] = {}
    scores_uri = cfg.table_uri("gold.scores")
    for name in selected_models(cfg, ctx.args.model or []):
        spec = cfg.models[name]
        if uses_label_column(spec):
            summary[name] = {"skipped": "a labelled table has no as-of dates to monitor"}
            continue
        champion = registry.current_champion(cfg, name)
        if champion is None:
            summary[name] = {"skipped": "no champion registered yet"}
            continue
        reference_day = _reference_date(cfg, champion)
        versions: dict[str, Any] = {}
        source = read_ref(ctx, spec.source, versions)
        as_of = F.col(spec.source.as_of_column)
        reference = source.where(as_of == F.lit(reference_day))
        current = source.where(as_of == F.lit(day))
        with ctx.log.stage("drift", model=name, reference=str(reference_day)) as st:
            ref_scored = predict(champion.model, reference, spec=spec)
            cur_scored = predict(champion.model, current, spec=spec)
            score_column = "prediction" if spec.task == "clustering" else ev.SCORE
            features = drift(reference, current, spec.features.numeric, bins=cfg.monitoring.bins)
            (score_drift,) = drift(ref_scored, cur_scored, [score_column], bins=cfg.monitoring.bins)
            for kind, d in [*(("feature", f) for f in features), ("score", score_drift)]:
                rows.append((day, name, champion.version, kind, d.column, reference_day,
                             day, d.psi, d.ks, d.js, d.band, None, d.current_rows,
                             ctx.run_id))  # fmt: skip
            breaches = [d.column for d in [*features, score_drift]
                        if d.psi >= cfg.monitoring.psi_alert]  # fmt: skip
            st.add(score_psi=score_drift.psi, features_significant=len(breaches))
        decay: dict[str, float] = {}
        if spec.task == "classification" and lake.delta_table_exists(spark, scores_uri):
            assert spec.label is not None
            events = read_ref(ctx, spec.label, versions)
            matured = day - timedelta(days=spec.label.horizon_days)
            # This champion's own matured scores: an earlier version's are not its record.
            past = lake.read_delta(spark, scores_uri).where(
                (F.col("model_name") == name)
                & (F.col("model_version") == champion.version)
                & (F.col("as_of_date") <= F.lit(matured))
            )
            keys = past.select(
                F.col("advisor_id").alias(spec.source.id_column),
                F.col("as_of_date").alias(spec.source.as_of_column),
            )
            # The scored advisors' snapshots, so the spec's baseline rule can be evaluated too.
            snapshots = source.join(keys, [spec.source.id_column, spec.source.as_of_column])
            baseline = F.expr(spec.baseline) if spec.baseline else F.lit(0.0)
            labelled = with_labels(
                snapshots, events, source=spec.source, label=spec.label, label_through=day
            ).select(
                F.col(spec.source.id_column).alias("advisor_id"),
                F.col(spec.source.as_of_column).alias("as_of_date"),
                F.col(LABEL),
                baseline.cast("double").alias("_baseline"),
            )
            joined = past.join(labelled, ["advisor_id", "as_of_date"])
            if not joined.isEmpty():
                decay["areaUnderROC"] = ev.auc(joined, F.col("score"))
                decay["baseline_areaUnderROC"] = ev.auc(joined, F.col("_baseline"))
                lift = ev.lift_table(joined, F.col("score"))
                decay["top_decile_lift"] = lift[0]["lift"] if lift else 0.0
                if decay["areaUnderROC"] < decay["baseline_areaUnderROC"]:
                    below_baseline.append(
                        f"{name} v{champion.version}: realised ROC-AUC "
                        f"{decay['areaUnderROC']:.4f} below its baseline "
                        f"{decay['baseline_areaUnderROC']:.4f} on labels matured by {day}"
                    )
                    registry.mlflow_client(cfg).MlflowClient().set_model_version_tag(
                        name, champion.version, "below_baseline", day.isoformat()
                    )
                n = joined.count()
                for metric, value in decay.items():
                    rows.append((day, name, champion.version, "performance", metric, None, matured,
                                 None, None, None, None, value, n, ctx.run_id))  # fmt: skip
                outcomes = _outcomes(past, labelled)
                lake.replace_slice(
                    outcomes,
                    cfg.table_uri("gold.score_outcomes"),
                    predicate=f"model_name = '{name}'",
                    partition_by=["as_of_date"],
                )
        if breaches:
            client = registry.mlflow_client(cfg).MlflowClient()
            client.set_model_version_tag(name, champion.version, "needs_retraining", "true")
            alerts.append(f"{name} v{champion.version}: PSI >= {cfg.monitoring.psi_alert} "
                          f"on {', '.join(breaches)} ({reference_day} -> {day})")  # fmt: skip
        summary[name] = {
            "version": champion.version,
            "reference_date": reference_day.isoformat(),
            "score_psi": score_drift.psi,
            "score_band": score_drift.band,
            "significant": breaches,
            "decay": {k: round(v, 4) for k, v in decay.items()},
        }
    if rows:
        lake.replace_slice(
            spark.createDataFrame(rows, MONITORING_SCHEMA),
            cfg.table_uri("ops.model_monitoring"),
            predicate=f"run_date = '{day.isoformat()}'",
            schema=MONITORING_SCHEMA,
            partition_by=["run_date"],
        )
    alerts.extend(below_baseline)
    published = None
    if alerts:
        ctx.log.event("drift_alert", level="WARNING", alerts=alerts)
        if cfg.services.alert_topic_arn:
            published = aws_client(cfg, "sns").publish(
                TopicArn=cfg.services.alert_topic_arn,
                Subject=f"decisionlake drift {day.isoformat()}",
                Message=json.dumps({"run_date": day.isoformat(), "alerts": alerts}),
            )["MessageId"]
    return {"run_date": day.isoformat(), "models": summary, "alerts": alerts,
            "below_baseline": below_baseline, "sns_message_id": published}  # fmt: skip


def parser():
    return model_job_parser(NAME, "Monitor drift and decay of each model's champion.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
