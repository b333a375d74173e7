"""A static HTML report of a pipeline run: what ran, row counts, quality, drift, models.

Written next to the run's outputs (``<artifacts>/reports/``), self-contained (charts are
inline PNGs), readable without Spark. Only small results are read: the run's step
summaries, the run dates' slices of ``ops.dq_results`` and ``ops.model_monitoring``, and the
champions' metrics from MLflow.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import AppConfig
from decisionlake.io import lake
from decisionlake.io.storage import write_bytes
from decisionlake.ops.pipeline import StepResult

SECTIONS = ("Steps", "Rows per stage", "Data quality", "Drift", "Models", "Promotion checks")
_COUNT_KEYS = ("rows_in", "accepted", "quarantined", "inserted", "rows", "notes_scored",
               "visitors_linked", "exported", "events_in_window")  # fmt: skip


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="chart" src="data:image/png;base64,{encoded}">'


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _counts(results: list[StepResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        row: dict[str, Any] = {"date": r.run_date.isoformat(), "step": r.step}
        for key in _COUNT_KEYS:
            if isinstance(r.summary.get(key), int | float):
                row[key] = r.summary[key]
        if len(row) > 2:
            out.append(row)
    return out


def _slice(spark: SparkSession, cfg: AppConfig, table: str, dates: list[str]) -> list[dict]:
    uri = cfg.table_uri(table)
    if not lake.delta_table_exists(spark, uri):
        return []
    rows = lake.read_delta(spark, uri).where(F.col("run_date").cast("string").isin(*dates))
    return [r.asDict() for r in rows.limit(2000).collect()]  # a run's results: small


def _champion_metrics(cfg: AppConfig) -> list[dict[str, Any]]:
    if not cfg.services.mlflow_tracking_uri:
        return []
    from decisionlake.models import registry

    mlflow = registry.mlflow_client(cfg)
    client = mlflow.MlflowClient()
    out = []
    for name in sorted(cfg.models):
        try:
            version = client.get_model_version_by_alias(name, registry.CHAMPION)
        except mlflow.exceptions.MlflowException:
            continue
        run = client.get_run(version.run_id)
        metrics = {k: round(v, 4) for k, v in run.data.metrics.items()}
        out.append({"model": name, "version": version.version,
                    "estimator": run.data.params.get("estimator"), **metrics})  # fmt: skip
    return out


def _promotion_checks(cfg: AppConfig, *, latest: int = 5) -> list[dict[str, Any]]:
    """The latest versions of each model: role and every promotion check with its figure."""
    if not cfg.services.mlflow_tracking_uri:
        return []
    from decisionlake.models import registry

    client = registry.mlflow_client(cfg).MlflowClient()
    out = []
    for name in sorted(cfg.models):
        versions = client.search_model_versions(f"name='{name}'")
        for version in sorted(versions, key=lambda v: -int(v.version))[:latest]:
            tags = dict(version.tags or {})
            checks = "; ".join(
                f"{key.removeprefix('check.')}: {value}"
                for key, value in sorted(tags.items())
                if key.startswith("check.")
            )
            role = tags.get("role", "?")
            out.append({"model": name, "version": version.version, "role": role,
                        "checks": checks or "none recorded"})  # fmt: skip
    return out


def render(spark: SparkSession, cfg: AppConfig, results: list[StepResult], *, title: str) -> str:
    """The report as one HTML string."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dates = sorted({r.run_date.isoformat() for r in results})
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, run dates "
             f"{dates[0] if dates else ''} .. {dates[-1] if dates else ''}</p>"]  # fmt: skip

    steps = [{"date": r.run_date.isoformat(), "step": r.step, "status": r.status,
              "attempts": r.attempts, "seconds": round(r.seconds, 1), "reason": r.reason}
             for r in results]  # fmt: skip
    parts.append("<h2>Steps</h2>")
    if results:
        fig, ax = plt.subplots(figsize=(7, 0.25 * len({r.step for r in results}) + 1.5))
        totals: dict[str, float] = {}
        for r in results:
            totals[r.step] = totals.get(r.step, 0.0) + r.seconds
        ax.barh(list(totals)[::-1], list(totals.values())[::-1], color="tab:blue")
        ax.set_xlabel("seconds (all run dates)")
        parts.append(_png(fig))
    parts.append(_table(steps, ["date", "step", "status", "attempts", "seconds", "reason"]))

    counts = _counts(results)
    parts.append("<h2>Rows per stage</h2>")
    parts.append(_table(counts, ["date", "step", *_COUNT_KEYS]))

    dq = _slice(spark, cfg, "ops.dq_results", dates)
    parts.append("<h2>Data quality</h2>")
    failed = [r for r in dq if not r.get("passed")]
    parts.append(f"<p>{len(dq)} rule results, {len(failed)} not passed.</p>")
    parts.append(_table(sorted(dq, key=lambda r: (r["passed"], str(r["table"]))),
                        ["run_date", "table", "rule", "severity", "rows_checked", "rows_failed",
                         "passed", "sample_failing"]))  # fmt: skip

    drift = _slice(spark, cfg, "ops.model_monitoring", dates)
    parts.append("<h2>Drift</h2>")
    with_psi = [r for r in drift if r.get("psi") is not None]
    if with_psi:
        latest = max(r["run_date"] for r in with_psi)
        shown = sorted((r for r in with_psi if r["run_date"] == latest),
                       key=lambda r: -r["psi"])[:20]  # fmt: skip
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.5))
        labels = [f"{r['model_name']}: {r['name']}" for r in shown][::-1]
        values = [r["psi"] for r in shown][::-1]
        colours = ["tab:red" if v >= 0.25 else "tab:orange" if v >= 0.1 else "tab:green"
                   for v in values]  # fmt: skip
        ax.barh(labels, values, color=colours)
        ax.axvline(0.1, color="grey", linestyle=":")
        ax.axvline(0.25, color="grey", linestyle="--")
        ax.set_xlabel(f"PSI on {latest} (0.1 moderate, 0.25 significant)")
        parts.append(_png(fig))
    parts.append(_table(drift, ["run_date", "model_name", "kind", "name", "psi", "ks", "js",
                                "band", "value"]))  # fmt: skip

    models = _champion_metrics(cfg)
    parts.append("<h2>Models</h2>")
    if models:
        keys = sorted({k for m in models for k in m} - {"model", "version", "estimator"})
        parts.append(_table(models, ["model", "version", "estimator", *keys]))
        lifts = [r for r in (_lift(cfg, m["model"]) for m in models) if r]
        for name, lift in lifts:
            fig, ax = plt.subplots(figsize=(5, 3))
            ax.bar([r["decile"] for r in lift], [r["lift"] for r in lift], color="tab:blue")
            ax.axhline(1.0, color="grey", linestyle="--")
            ax.set_xlabel("score decile (1 = highest)")
            ax.set_ylabel("lift")
            ax.set_title(f"{name}: lift on the test snapshot")
            parts.append(_png(fig))
    else:
        parts.append("<p><em>no champion registered yet</em></p>")
    checks = _promotion_checks(cfg)
    parts.append("<h2>Promotion checks</h2>")
    parts.append("<p>A version is champion only when every check passes; a rejected "
                 "version is never scored or exported.</p>")  # fmt: skip
    if checks:
        parts.append(_table(checks, ["model", "version", "role", "checks"]))
    else:
        parts.append("<p><em>no model version registered yet</em></p>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:"
             "collapse;font-size:0.85em;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:left}th{background:#eee}")  # fmt: skip
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


def _lift(cfg: AppConfig, model: str) -> tuple[str, list[dict]] | None:
    from decisionlake.models import registry

    mlflow = registry.mlflow_client(cfg)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(model, registry.CHAMPION)
    try:
        path = client.download_artifacts(version.run_id, "lift.json")
    except Exception:  # clustering and regression models have no lift table
        return None
    return model, json.loads(Path(path).read_text())["lift"]


def write_report(
    spark: SparkSession, cfg: AppConfig, results: list[StepResult], *, run_id: str
) -> str:
    """Render and store the report; returns its URI."""
    dates = sorted({r.run_date.isoformat() for r in results}) or ["none"]
    title = f"decisionlake run {dates[0]}" + (f" .. {dates[-1]}" if len(dates) > 1 else "")
    uri = f"{cfg.paths.artifacts.rstrip('/')}/reports/run-{dates[-1]}-{run_id[:8]}.html"
    write_bytes(uri, render(spark, cfg, results, title=title).encode("utf-8"), cfg.storage)
    return uri
