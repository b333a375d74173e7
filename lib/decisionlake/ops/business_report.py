"""The business report: one self-contained HTML page per run date for distribution and marketing.

Whom to call and why, whether calling made a difference (uplift against the control group),
how the models hold up over time, the segments, and how fresh and clean the data is. Charts
are inline PNGs; long tables are collapsed. Only small results are read (the run date's call
list top, the uplift rows, per-date monitoring and quality figures), never whole tables.
Key figures carry ``data-figure`` attributes, so a browser test can check them against the
tables they come from.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import AppConfig
from decisionlake.io import lake
from decisionlake.io.storage import write_bytes
from decisionlake.ops.report import _champion_metrics, _png, _table

SECTIONS = (
    "Who to call",
    "Did calling make a difference",
    "Model health over time",
    "Segments",
    "Data freshness and quality",
)
FRESHNESS_TABLES = ("bronze.clickstream", "bronze.crm_notes", "bronze.fund_trades")


def _figure(name: str, value: Any) -> str:
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    return f'<strong data-figure="{html.escape(name)}">{html.escape(shown)}</strong>'


def _collapsed(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


def _read(spark: SparkSession, cfg: AppConfig, name: str) -> Any:
    uri = cfg.table_uri(name)
    return lake.read_delta(spark, uri) if lake.delta_table_exists(spark, uri) else None


def _call_list_section(spark: SparkSession, cfg: AppConfig, day: date) -> list[str]:
    parts = [f"<h2>{SECTIONS[0]}</h2>"]
    table = _read(spark, cfg, "gold.call_list")
    today = table.where(F.col("run_date") == F.lit(day)) if table is not None else None
    # Two rows at most (contact, holdout).
    counts = dict(today.groupBy("assignment").count().collect()) if today is not None else {}
    if not counts:
        parts.append("<p>No call list for this date: no ranking champion passed its checks.</p>")
        return parts
    top = [
        {**r.asDict(), "reasons": "; ".join(r["reasons"] or []),
         "interests": ", ".join(r["interests"] or [])}
        for r in today.where("assignment = 'contact'").orderBy("rank")
        .select("rank", "advisor_id", F.round("score", 3).alias("score"), "segment_name",
                "reasons", "interests", "days_since_last_contact")
        .limit(15).collect()  # the top of the list
    ]  # fmt: skip
    parts.append(
        f"<p>{_figure('contacts', counts.get('contact', 0))} advisors to call; "
        f"{_figure('held_out', counts.get('holdout', 0))} held out as the control group "
        "(scored, never called, so the effect of calling can be measured).</p>"
    )
    parts.append(_table(top, ["rank", "advisor_id", "score", "segment_name", "reasons",
                              "interests", "days_since_last_contact"]))  # fmt: skip
    return parts


def _uplift_section(spark: SparkSession, cfg: AppConfig, day: date) -> list[str]:
    import matplotlib.pyplot as plt

    parts = [f"<h2>{SECTIONS[1]}</h2>"]
    table = _read(spark, cfg, "gold.campaign_uplift")
    rows = (
        [r.asDict() for r in table.where(F.col("run_date") == F.lit(day)).collect()]  # <= 11
        if table is not None
        else []
    )
    overall = next((r for r in rows if r["decile"] is None), None)
    if overall is None:
        parts.append("<p>No list has matured yet: too few matured outcomes to say anything.</p>")
        return parts
    if overall["uplift_low"] is None:
        parts.append(
            f"<p data-figure='conclusion'>{html.escape(overall['conclusion'])}: "
            f"{overall['contacted']} contacted and {overall['held_out']} held-out advisors "
            "have matured outcomes. No uplift figure is given on so few.</p>"
        )
    else:
        parts.append(
            f"<p>Conversion {_figure('contacted_rate', overall['contacted_rate'])} contacted vs "
            f"{_figure('held_out_rate', overall['held_out_rate'])} held out: uplift "
            f"{_figure('uplift', overall['uplift'])} (95% interval "
            f"{overall['uplift_low']:.3f} .. {overall['uplift_high']:.3f}) — "
            f"<span data-figure='conclusion'>{html.escape(overall['conclusion'])}</span>.</p>"
        )
    by_decile = sorted((r for r in rows if r["decile"] is not None), key=lambda r: r["decile"])
    if by_decile:
        fig, ax = plt.subplots(figsize=(6, 3))
        x = [r["decile"] for r in by_decile]
        ax.bar([d - 0.2 for d in x], [r["contacted_rate"] for r in by_decile], 0.4,
               label="contacted")  # fmt: skip
        ax.bar([d + 0.2 for d in x], [r["held_out_rate"] for r in by_decile], 0.4,
               label="held out")  # fmt: skip
        ax.set_xticks(x)
        ax.set_xlabel("score decile (1 = highest)")
        ax.set_ylabel("conversion")
        ax.legend()
        parts.append(_png(fig))
        parts.append(_collapsed("uplift by decile", _table(by_decile, [
            "decile", "contacted", "held_out", "contacted_rate", "held_out_rate", "uplift",
            "uplift_low", "uplift_high", "conclusion"])))  # fmt: skip
    return parts


def _health_section(spark: SparkSession, cfg: AppConfig) -> list[str]:
    import matplotlib.pyplot as plt

    parts = [f"<h2>{SECTIONS[2]}</h2>"]
    champions = _champion_metrics(cfg)
    shown = ["model", "version", "estimator", "areaUnderROC", "baseline_areaUnderROC",
             "top_decile_lift", "top_decile_lift_low", "top_decile_lift_high", "rmse",
             "silhouette"]  # fmt: skip
    parts.append("<p>Champions on their test snapshot (never a training date):</p>")
    parts.append(_table(champions, [c for c in shown if any(c in m for m in champions)]))
    monitoring = _read(spark, cfg, "ops.model_monitoring")
    if monitoring is None:
        parts.append("<p><em>no monitoring yet</em></p>")
        return parts
    trend = [
        r.asDict()
        for r in monitoring.where(
            (
                (F.col("kind") == "performance")
                & F.col("name").isin("areaUnderROC", "baseline_areaUnderROC", "top_decile_lift")
            )
            | (F.col("kind") == "score")
        )
        .select("run_date", "model_name", "kind", "name", "value", "psi")
        .orderBy("run_date")
        .limit(2000)
        .collect()  # a value per model, kind and run date
    ]  # fmt: skip
    if trend:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
        for model in sorted({r["model_name"] for r in trend}):
            psi = [(r["run_date"], r["psi"]) for r in trend
                   if r["model_name"] == model and r["kind"] == "score"]  # fmt: skip
            if psi:
                bottom.plot([d for d, _ in psi], [p for _, p in psi], "o-", label=model)
            auc = [(r["run_date"], r["value"]) for r in trend
                   if r["model_name"] == model and r["name"] == "areaUnderROC"]  # fmt: skip
            if auc:
                top.plot([d for d, _ in auc], [v for _, v in auc], "o-", label=f"{model} realised")
        top.set_ylabel("realised ROC-AUC")
        bottom.set_ylabel("score PSI")
        bottom.axhline(cfg.monitoring.psi_alert, color="grey", linestyle="--")
        bottom.legend(fontsize=7)
        fig.autofmt_xdate()
        parts.append(_png(fig))
        parts.append(_collapsed("monitoring figures", _table(trend, [
            "run_date", "model_name", "kind", "name", "value", "psi"])))  # fmt: skip
    return parts


def _segments_section(spark: SparkSession, cfg: AppConfig, day: date) -> list[str]:
    parts = [f"<h2>{SECTIONS[3]}</h2>"]
    scores = _read(spark, cfg, "gold.scores")
    calls = _read(spark, cfg, "gold.call_list")
    if scores is None:
        parts.append("<p><em>no segments yet</em></p>")
        return parts
    segments = scores.where(
        (F.col("model_name") == cfg.call_list.segment_model) & (F.col("as_of_date") == F.lit(day))
    ).select("advisor_id", "segment")
    spec = cfg.models.get(cfg.call_list.segment_model)
    snapshot = _read(spark, cfg, "gold.advisor_360")
    features = [f for f in (spec.features.numeric if spec else [])
                if snapshot is not None and f in snapshot.columns][:6]  # fmt: skip
    profiled = (
        segments.join(snapshot.where(F.col("as_of_date") == F.lit(day)), "advisor_id", "left")
        if snapshot is not None
        else segments
    )
    rows = [
        r.asDict()
        for r in profiled.groupBy("segment")
        .agg(F.count("*").alias("advisors"), *[F.round(F.avg(f), 2).alias(f) for f in features])
        .orderBy("segment").collect()  # one row per segment
    ]  # fmt: skip
    names = (
        dict(calls.where(F.col("run_date") == F.lit(day)).select("segment", "segment_name")
             .distinct().collect())  # one row per segment
        if calls is not None else {}
    )  # fmt: skip
    for row in rows:
        row["name"] = names.get(row["segment"], "")
    parts.append("<p>Mean behaviour per segment on this date:</p>")
    parts.append(_table(rows, ["segment", "name", "advisors", *features]))
    return parts


def _quality_section(spark: SparkSession, cfg: AppConfig) -> list[str]:
    import matplotlib.pyplot as plt

    parts = [f"<h2>{SECTIONS[4]}</h2>"]
    fresh = []
    for name in FRESHNESS_TABLES:
        table = _read(spark, cfg, name)
        if table is not None and "ingest_date" in table.columns:
            latest = table.agg(F.max("ingest_date")).first()[0]  # one row
            fresh.append({"table": name, "latest_delivery": str(latest)})
    parts.append(_table(fresh, ["table", "latest_delivery"]))
    results = _read(spark, cfg, "ops.dq_results")
    if results is None:
        return parts
    per_day = [
        r.asDict()
        for r in results.groupBy("run_date")
        .agg(F.count("*").alias("rules"), F.sum(F.when(~F.col("passed"), 1).otherwise(0))
             .alias("failed"))
        .orderBy("run_date").limit(400).collect()  # one row per run date
    ]  # fmt: skip
    if per_day:
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.bar([str(r["run_date"]) for r in per_day], [r["rules"] - r["failed"] for r in per_day],
               label="passed", color="tab:green")  # fmt: skip
        ax.bar([str(r["run_date"]) for r in per_day], [r["failed"] for r in per_day],
               bottom=[r["rules"] - r["failed"] for r in per_day], label="failed",
               color="tab:red")  # fmt: skip
        ax.set_ylabel("quality rules")
        ax.legend(fontsize=7)
        fig.autofmt_xdate()
        parts.append(_png(fig))
        latest = per_day[-1]
        parts.append(f"<p>Latest run: {_figure('rules_failed', latest['failed'])} of "
                     f"{latest['rules']} quality rules failed.</p>")  # fmt: skip
    return parts


def render(spark: SparkSession, cfg: AppConfig, day: date) -> str:
    """The page as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    parts = [f"<h1>Advisor outreach — {day.isoformat()}</h1>",
             f"<p>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"]  # fmt: skip
    parts += _call_list_section(spark, cfg, day)
    parts += _uplift_section(spark, cfg, day)
    parts += _health_section(spark, cfg)
    parts += _segments_section(spark, cfg, day)
    parts += _quality_section(spark, cfg)
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:"
             "collapse;font-size:0.85em;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:left}th{background:#eee}"
             "details{margin:0.5em 0}")  # fmt: skip
    head = f"<meta charset='utf-8'><title>Advisor outreach {day}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def write_business_report(spark: SparkSession, cfg: AppConfig, day: date) -> str:
    """Render and store the page beside the run reports; returns its URI."""
    uri = f"{cfg.paths.artifacts.rstrip('/')}/reports/business-{day.isoformat()}.html"
    write_bytes(uri, render(spark, cfg, day).encode("utf-8"), cfg.storage)
    return uri
