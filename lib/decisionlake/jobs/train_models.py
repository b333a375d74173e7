"""train_models: every model spec (or ``--model``) → fitted, recorded in MLflow, judged.

Trains on snapshots up to the run date; labels use events up to the run date only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.models import registry
from decisionlake.models.fit import fit_clustering, fit_supervised
from decisionlake.models.sources import model_job_parser, selected_models, training_inputs

NAME = "train_models"


def run(ctx: JobContext) -> dict[str, Any]:
    """Fit, record and judge each selected model."""
    cfg = ctx.cfg
    results: dict[str, Any] = {}
    for name in selected_models(cfg, ctx.args.model or []):
        spec = cfg.models[name]
        versions: dict[str, Any] = {}
        inputs = training_inputs(ctx, name, spec, versions)
        if spec.task == "clustering":
            outcome = fit_clustering(
                spec, name=name, snapshots=inputs.rows, as_of=inputs.latest, log=ctx.log
            )
        else:
            outcome = fit_supervised(
                spec,
                name=name,
                snapshots=inputs.rows,
                events=inputs.events,
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
                production=inputs.production,
                production_date=inputs.production_label,
            )
            st.add(version=decision.version, role=decision.role, reason=decision.reason)
        ctx.log.event(
            "champion_decision",
            level="INFO" if decision.role != "rejected" else "WARNING",
            model=name,
            version=decision.version,
            role=decision.role,
            promoted=decision.promoted,
            reason=decision.reason,
            checks=list(decision.checks),
        )
        results[name] = {
            "estimator": outcome.candidate,
            "params": outcome.params,
            "metrics": {k: round(v, 5) for k, v in outcome.metrics.items()},
            "version": decision.version,
            "mlflow_run_id": decision.run_id,
            "promoted": decision.promoted,
            "role": decision.role,
            "decision": decision.reason,
            "checks": list(decision.checks),
            "train_dates": [d.isoformat() for d in outcome.train_dates],
            "test_dates": [d.isoformat() for d in outcome.test_dates],
            "inputs": versions,
            "segment_profiles": outcome.tables.get("segment_profiles"),
            "top_importance": outcome.importance[:5],
        }
    return {"run_date": ctx.run_date.isoformat(), "models": results}


def parser():
    return model_job_parser(NAME, "Train the models declared in conf/models and judge them.")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
