"""monitor: drift of each champion's features and scores, decay once labels mature, outcomes.

What is measured is ``models.monitoring`` (drift, decay, outcomes); this job wires it: results
replace the run date's slice of ``ops.model_monitoring``, realised outcomes by decile go to
``gold.score_outcomes``, and a PSI at or above ``monitoring.psi_alert`` (or a champion whose
realised ROC-AUC falls below its baseline's) publishes to the alert topic and tags the model
version (``needs_retraining``, ``below_baseline``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.aws import publish_alert
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.models import monitoring, registry
from decisionlake.models.sources import (
    model_job_parser,
    read_ref,
    selected_models,
    uses_label_column,
)

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


@dataclass
class Report:
    """What monitoring one model found: rows for ops.model_monitoring, alerts, a summary."""

    rows: list[tuple] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    below_baseline: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _decay(ctx: JobContext, name: str, champion: Any, source: Any, versions: dict,
           report: Report) -> dict[str, float]:  # fmt: skip
    """Realised performance of the champion's matured scores; outcomes by decile replaced."""
    cfg, day, spec = ctx.cfg, ctx.run_date, ctx.cfg.models[name]
    scores_uri = cfg.table_uri("gold.scores")
    if spec.task != "classification" or not lake.delta_table_exists(ctx.spark, scores_uri):
        return {}
    past = monitoring.matured_scores(lake.read_delta(ctx.spark, scores_uri), model=name,
                                     version=champion.version, spec=spec, day=day)  # fmt: skip
    joined, labelled = monitoring.labelled_scores(
        past, source, read_ref(ctx, spec.label, versions), spec=spec, day=day
    )
    if joined.isEmpty():
        return {}
    decay = monitoring.decay_metrics(joined)
    if decay["areaUnderROC"] < decay["baseline_areaUnderROC"]:
        report.below_baseline.append(
            f"{name} v{champion.version}: realised ROC-AUC {decay['areaUnderROC']:.4f} below "
            f"its baseline {decay['baseline_areaUnderROC']:.4f} on labels matured by {day}"
        )
        registry.mlflow_client(cfg).MlflowClient().set_model_version_tag(
            name, champion.version, "below_baseline", day.isoformat()
        )
    n, matured = joined.count(), monitoring.matured_through(spec, day)
    for metric, value in decay.items():
        report.rows.append((day, name, champion.version, "performance", metric, None, matured,
                            None, None, None, None, value, n, ctx.run_id))  # fmt: skip
    lake.replace_slice(monitoring.outcomes(past, labelled), cfg.table_uri("gold.score_outcomes"),
                       predicate=f"model_name = '{name}'", partition_by=["as_of_date"])  # fmt: skip
    return decay


def _monitor(ctx: JobContext, name: str, champion: Any, report: Report) -> dict[str, Any]:
    cfg, day, spec = ctx.cfg, ctx.run_date, ctx.cfg.models[name]
    reference_day = _reference_date(cfg, champion)
    versions: dict[str, Any] = {}
    source = read_ref(ctx, spec.source, versions)
    as_of = F.col(spec.source.as_of_column)
    with ctx.log.stage("drift", model=name, reference=str(reference_day)) as st:
        found = monitoring.champion_drift(
            champion.model, source.where(as_of == F.lit(reference_day)),
            source.where(as_of == F.lit(day)), spec=spec, bins=cfg.monitoring.bins,
        )  # fmt: skip
        for kind, d in found.all():
            report.rows.append((day, name, champion.version, kind, d.column, reference_day, day,
                                d.psi, d.ks, d.js, d.band, None, d.current_rows,
                                ctx.run_id))  # fmt: skip
        breaches = found.breaches(cfg.monitoring.psi_alert)
        st.add(score_psi=found.score.psi, features_significant=len(breaches))
    decay = _decay(ctx, name, champion, source, versions, report)
    if breaches:
        client = registry.mlflow_client(cfg).MlflowClient()
        client.set_model_version_tag(name, champion.version, "needs_retraining", "true")
        report.alerts.append(f"{name} v{champion.version}: PSI >= {cfg.monitoring.psi_alert} "
                             f"on {', '.join(breaches)} ({reference_day} -> {day})")  # fmt: skip
    return {"version": champion.version, "reference_date": reference_day.isoformat(),
            "score_psi": found.score.psi, "score_band": found.score.band, "significant": breaches,
            "decay": {k: round(v, 4) for k, v in decay.items()}}  # fmt: skip


def run(ctx: JobContext) -> dict[str, Any]:
    """Monitor every model with a champion."""
    cfg, day = ctx.cfg, ctx.run_date
    report = Report()
    for name in selected_models(cfg, ctx.args.model or []):
        champion = registry.current_champion(cfg, name)
        if uses_label_column(cfg.models[name]):
            report.summary[name] = {"skipped": "a labelled table has no as-of dates to monitor"}
        elif champion is None:
            report.summary[name] = {"skipped": "no champion registered yet"}
        else:
            report.summary[name] = _monitor(ctx, name, champion, report)
    if report.rows:
        lake.replace_slice(
            ctx.spark.createDataFrame(report.rows, MONITORING_SCHEMA),
            cfg.table_uri("ops.model_monitoring"),
            predicate=f"run_date = '{day.isoformat()}'",
            schema=MONITORING_SCHEMA,
            partition_by=["run_date"],
        )
    alerts = [*report.alerts, *report.below_baseline]
    published = None
    if alerts:
        ctx.log.event("drift_alert", level="WARNING", alerts=alerts)
        published = publish_alert(cfg, f"decisionlake drift {day.isoformat()}",
                                  {"run_date": day.isoformat(), "alerts": alerts})  # fmt: skip
    return {"run_date": day.isoformat(), "models": report.summary, "alerts": alerts,
            "below_baseline": report.below_baseline, "sns_message_id": published}  # fmt: skip


def parser():
    return model_job_parser(NAME, "Monitor drift and decay of each model's champion.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
