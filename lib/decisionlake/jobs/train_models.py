"""train_models: every model spec (or ``--model``) → fitted, recorded in MLflow, judged.

Trains on snapshots up to the run date; labels use events up to the run date only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake import lake
from decisionlake.config import AppConfig, ConfigError
from decisionlake.models import registry
from decisionlake.models.spec import TableRef
from decisionlake.models.train import fit_clustering, fit_supervised
from decisionlake.runtime import JobContext, job_parser, run_job

NAME = "train_models"


def resolve(cfg: AppConfig, ref: TableRef) -> str:
    """A spec's table: a logical name of the catalog, or a URI as given."""
    return cfg.table_uri(ref.table) if ref.table in cfg.tables else ref.table


def read_ref(ctx: JobContext, ref: TableRef, versions: dict[str, Any]) -> DataFrame:
    """Read a spec's table and remember the Delta version read (reproducibility)."""
    uri = resolve(ctx.cfg, ref)
    df = lake.read_table(ctx.spark, uri, ref.format)
    if ref.format == "delta":
        version = lake.table_version(ctx.spark, uri)
        versions[ref.table] = version
        return ctx.spark.read.format("delta").option("versionAsOf", version).load(uri)
    return df


def selected_models(cfg: AppConfig, names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in cfg.models]
    if unknown:
        raise ConfigError(
            f"--model {unknown[0]}: no spec conf/models/{unknown[0]}.yaml "
            f"(known: {', '.join(sorted(cfg.models))})"
        )
    return names or sorted(cfg.models)


def run(ctx: JobContext) -> dict[str, Any]:
    """Fit, record and judge each selected model."""
    cfg = ctx.cfg
    results: dict[str, Any] = {}
    for name in selected_models(cfg, ctx.args.model or []):
        spec = cfg.models[name]
        versions: dict[str, Any] = {}
        snapshots = read_ref(ctx, spec.source, versions).where(
            F.col(spec.source.as_of_column) <= F.lit(ctx.run_date)
        )
        if spec.task == "clustering":
            latest = snapshots.agg(F.max(spec.source.as_of_column).alias("d")).first()["d"]
            if latest is None:
                raise ValueError(f"models.{name}: {spec.source.table} has no snapshot yet")
            outcome = fit_clustering(
                spec, name=name, snapshots=snapshots, as_of=latest, log=ctx.log
            )
        else:
            assert spec.label is not None
            events = read_ref(ctx, spec.label, versions)
            outcome = fit_supervised(
                spec,
                name=name,
                snapshots=snapshots,
                events=events,
                label_through=ctx.run_date,
                log=ctx.log,
            )
        with ctx.log.stage("record", model=name) as st:
            decision = registry.record(
                cfg,
                outcome,
                run_date=ctx.run_date.isoformat(),
                input_versions=versions,
                job_run_id=ctx.run_id,
            )
            st.add(version=decision.version, promoted=decision.promoted, reason=decision.reason)
        ctx.log.event(
            "champion_decision",
            model=name,
            version=decision.version,
            promoted=decision.promoted,
            reason=decision.reason,
        )
        results[name] = {
            "estimator": outcome.candidate,
            "params": outcome.params,
            "metrics": {k: round(v, 5) for k, v in outcome.metrics.items()},
            "version": decision.version,
            "mlflow_run_id": decision.run_id,
            "promoted": decision.promoted,
            "decision": decision.reason,
            "train_dates": [d.isoformat() for d in outcome.train_dates],
            "test_dates": [d.isoformat() for d in outcome.test_dates],
            "inputs": versions,
            "segment_profiles": outcome.tables.get("segment_profiles"),
            "top_importance": outcome.importance[:5],
        }
    return {"run_date": ctx.run_date.isoformat(), "models": results}


def model_job_parser(name: str, description: str):
    """The job parser of the model jobs: ``--model`` picks specs (default: all)."""
    p = job_parser(name, description)
    p.add_argument("--model", action="append", help="model spec name (repeatable; default all)")
    return p


def parser():
    return model_job_parser(NAME, "Train the models declared in conf/models and judge them.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
