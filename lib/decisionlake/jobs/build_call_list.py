"""build_call_list: the run date's call list (with its control group) and the measured uplift.

Reads the run date's ``gold.scores`` (the ranking model's champion, the segments) and
``gold.advisor_360`` snapshot; writes ``gold.call_list`` (targeted advisors with rank, score,
decile, segment and its name, reasons, interests, days since last contact, and ``assignment``:
``contact`` or ``holdout``), replacing the run date's slice. Then, for every earlier list
whose outcome window has closed, compares conversion of contacted and held-out advisors
(``gold.campaign_uplift``, the run date's slice replaced).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pyspark.sql import functions as F

from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.runtime import JobContext, run_job
from decisionlake.gold import call_list as cl
from decisionlake.io import lake

NAME = "build_call_list"


def run(ctx: JobContext) -> dict[str, Any]:
    """Target, assign, write; then measure what matured."""
    cfg, spark, day = ctx.cfg, ctx.spark, ctx.run_date
    settings = cfg.call_list
    scores_uri = cfg.table_uri("gold.scores")
    scores = (
        lake.read_delta(spark, scores_uri).where(F.col("as_of_date") == F.lit(day))
        if lake.delta_table_exists(spark, scores_uri)
        else None
    )
    if scores is None or scores.where(F.col("model_name") == settings.model).isEmpty():
        reason = f"no {settings.model} scores for {day} (no champion that passed its checks)"
        ctx.log.event("call_list_skipped", reason=reason)
        return {"run_date": day.isoformat(), "targeted": 0, "reason": reason}
    snapshot = lake.read_delta(spark, cfg.table_uri("gold.advisor_360")).where(
        F.col("as_of_date") == F.lit(day)
    )
    with ctx.log.stage("target", model=settings.model, size=settings.size) as st:
        names = cl.segment_names(
            _segment_profiles(ctx, scores, snapshot), features=_segment_features(ctx)
        )
        period = cl.campaign_period(day, period_days=settings.campaign_period_days)
        targeted = cl.targeted(
            scores,
            snapshot,
            model=settings.model,
            segment_model=settings.segment_model,
            segment_names=names,
            size=settings.size,
            limits=settings.limits,
            key=pseudonymisation_key(cfg),
            period=period,
            holdout_fraction=settings.holdout_fraction,
        ).withColumn("run_date", F.lit(day))
        metrics = lake.replace_slice(
            targeted, cfg.table_uri("gold.call_list"), predicate=f"run_date = '{day}'",
            partition_by=["run_date"],
        )  # fmt: skip
        lists = lake.read_delta(spark, cfg.table_uri("gold.call_list"))
        today = lists.where(F.col("run_date") == F.lit(day))
        counts = dict(today.groupBy("assignment").count().collect())  # two rows
        top = [
            r.asDict()
            for r in today.where("assignment = 'contact'")
            .orderBy("rank")
            .select("rank", "advisor_id", "score", "segment_name", "reasons")
            .limit(5)
            .collect()
        ]  # fmt: skip  (five rows: limit(5))
        st.add(contact=counts.get(cl.CONTACT, 0), holdout=counts.get(cl.HOLDOUT, 0),
               version=metrics.get("version"))  # fmt: skip
    with ctx.log.stage("uplift") as st:
        overall = _measure_uplift(ctx, lists)
        st.add(**{k: v for k, v in (overall or {}).items() if k != "decile"})
    return {
        "run_date": day.isoformat(),
        "targeted": sum(counts.values()),
        "contact": counts.get(cl.CONTACT, 0),
        "holdout": counts.get(cl.HOLDOUT, 0),
        "campaign_period": period,
        "segment_names": {str(k): v for k, v in names.items()},
        "top": top,
        "uplift": overall,
        "tables": {n: cfg.table_uri(n) for n in ("gold.call_list", "gold.campaign_uplift")},
    }


def _segment_features(ctx: JobContext) -> list[str]:
    spec = ctx.cfg.models.get(ctx.cfg.call_list.segment_model)
    return list(spec.features.numeric) if spec else []


def _segment_profiles(ctx: JobContext, scores: Any, snapshot: Any) -> list[dict[str, Any]]:
    """Mean of each segment feature per segment (one row per segment)."""
    features = [f for f in _segment_features(ctx) if f in snapshot.columns]
    segments = scores.where(F.col("model_name") == ctx.cfg.call_list.segment_model)
    if not features or segments.isEmpty():
        return []
    rows = (
        segments.select("advisor_id", "segment")
        .join(snapshot, "advisor_id")
        .groupBy("segment")
        .agg(F.count("*").alias("advisors"), *[F.avg(f).alias(f) for f in features])
        .collect()  # one row per segment
    )
    return [r.asDict() for r in rows]


def _measure_uplift(ctx: JobContext, lists: Any) -> dict[str, Any] | None:
    """Uplift of the lists whose outcome window closed by the run date (their slice)."""
    cfg, day = ctx.cfg, ctx.run_date
    spec = cfg.models.get(cfg.call_list.model)
    if spec is None or spec.label is None or not spec.label.table:
        return None
    horizon = spec.label.horizon_days
    matured = lists.where(F.col("run_date") <= F.lit(day - timedelta(days=horizon))).transform(
        cl.first_listing_per_period
    )
    events = lake.read_delta(ctx.spark, cfg.table_uri(spec.label.table))
    if spec.label.where:
        events = events.where(spec.label.where)
    events = events.where(F.to_date(F.col(spec.label.time_column)) <= F.lit(day))
    outcomes = cl.outcomes_of(
        matured, events, id_column=spec.label.id_column, time_column=spec.label.time_column,
        horizon_days=horizon,
    )  # fmt: skip
    table = cl.uplift(outcomes, min_per_arm=cfg.call_list.min_per_arm).withColumn(
        "run_date", F.lit(day)
    )
    lake.replace_slice(
        table, cfg.table_uri("gold.campaign_uplift"), predicate=f"run_date = '{day}'",
        partition_by=["run_date"],
    )  # fmt: skip
    row = (
        lake.read_delta(ctx.spark, cfg.table_uri("gold.campaign_uplift"))
        .where((F.col("run_date") == F.lit(day)) & F.col("decile").isNull())
        .first()
    )  # the overall row
    if row is None:
        return None
    found = row.asDict()
    found.pop("run_date", None)
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in found.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
