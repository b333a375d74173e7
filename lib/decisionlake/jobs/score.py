"""score: each model's champion scores the run date's snapshot → gold.scores (replaced slice)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.io.lineage import record_run
from decisionlake.models import evaluate as ev
from decisionlake.models import registry
from decisionlake.models.explain import explainer
from decisionlake.models.scoring import SCORES_SCHEMA, predict, to_scores
from decisionlake.models.sources import (
    model_job_parser,
    read_source,
    selected_models,
    uses_label_column,
)

NAME = "score"


def run(ctx: JobContext) -> dict[str, Any]:
    """Score with every champion that passed its promotion checks.

    A model without a champion yet is skipped, one whose champion lacks passing checks is
    refused (logged as a warning); neither is an error of the job.
    """
    cfg, day = ctx.cfg, ctx.run_date
    uri = cfg.table_uri("gold.scores")
    results: dict[str, Any] = {}
    for name in selected_models(cfg, ctx.args.model or []):
        spec = cfg.models[name]
        champion = registry.current_champion(cfg, name)
        if champion is None:
            ctx.log.event("model_skipped", model=name, reason="no champion registered yet")
            results[name] = {"skipped": "no champion registered yet"}
            continue
        refused = registry.refusal(champion)
        if refused:
            # Registries filled before the promotion checks, or a champion set by hand.
            ctx.log.event("model_refused", level="WARNING", model=name, reason=refused)
            results[name] = {"refused": refused}
            continue
        versions: dict[str, Any] = {}
        rows = read_source(ctx, name, spec, versions)
        # A labelled table is scored whole; snapshots on the run date's as-of date.
        snapshot = (
            rows if uses_label_column(spec) else rows.where(F.col(spec.source.as_of_column) == day)
        )
        with ctx.log.stage("score", model=name, version=champion.version) as st:
            predictions = predict(champion.model, snapshot, spec=spec).cache()
            stats = predictions.agg(
                F.count("*").alias("rows"), F.avg(ev.SCORE).alias("mean")
            ).first()
            if not stats["rows"]:
                raise ValueError(f"{spec.source.table} has no snapshot for {day} to score")
            cutpoints = (
                ev.decile_cutpoints(predictions, F.col(ev.SCORE))
                if spec.task != "clustering"
                else []
            )
            rows = to_scores(
                predictions,
                spec=spec,
                model_name=name,
                model_version=champion.version,
                as_of=day,
                run_id=ctx.run_id,
                cutpoints=cutpoints,
                explainer=explainer(champion.model, predictions),
            )
            metrics = lake.replace_slice(
                rows,
                uri,
                predicate=f"model_name = '{name}' AND as_of_date = '{day.isoformat()}'",
                schema=SCORES_SCHEMA,
                partition_by=["as_of_date"],
                add_new_columns=True,  # tables from before reasons gain the field
            )
            predictions.unpersist()
            st.add(rows=stats["rows"], mean_score=stats["mean"], version=metrics.get("version"))
        results[name] = {
            "model_version": champion.version,
            "rows": stats["rows"],
            "mean_score": None if stats["mean"] is None else round(float(stats["mean"]), 5),
            "inputs": versions,
        }
    scored = {n: r for n, r in results.items() if "model_version" in r}
    if scored:
        inputs = {t: v for r in scored.values() for t, v in r["inputs"].items()}
        record_run(
            ctx,
            inputs=inputs,
            outputs={"gold.scores": lake.table_version(ctx.spark, uri)},
            details={n: {"model_version": r["model_version"]} for n, r in scored.items()},
        )
    return {"run_date": day.isoformat(), "models": results, "tables": {"gold.scores": uri}}


def parser():
    return model_job_parser(NAME, "Score the run date's snapshot with each model's champion.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
