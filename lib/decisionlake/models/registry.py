"""MLflow: record a fitted model, register it, decide champion vs challenger, load champions."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel

from decisionlake.config import AppConfig
from decisionlake.models import evaluate as ev
from decisionlake.models.spec import LOWER_IS_BETTER
from decisionlake.models.train import FitOutcome

EXPERIMENT = "decisionlake-models"
CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    """What happened to a newly registered version."""

    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str
    metric: str
    new_value: float
    champion_value: float | None


@dataclass(frozen=True)
class Champion:
    """The registered champion of a model."""

    model_name: str
    version: str
    run_id: str
    model: PipelineModel


def mlflow_client(cfg: AppConfig) -> Any:
    """The ``mlflow`` module pointed at the environment's tracking server or store."""
    import mlflow

    uri = cfg.services.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri.removeprefix("sqlite:///")) or ".", exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow


def _experiment_id(cfg: AppConfig, mlflow: Any) -> str:
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found:
        return found.experiment_id
    uri = cfg.services.mlflow_tracking_uri
    # A tracking server stores artifacts itself; a bare store keeps them with our artifacts.
    location = None if uri.startswith("http") else f"{cfg.paths.artifacts.rstrip('/')}/mlflow"
    return mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def better(new: float, old: float, *, metric: str, margin: float) -> bool:
    """Whether ``new`` beats ``old`` by at least ``margin`` in the metric's direction."""
    if metric in LOWER_IS_BETTER:
        return new <= old - margin
    return new >= old + margin


def meets_floor(value: float, *, metric: str, floor: float | None) -> bool:
    if floor is None:
        return True
    return value <= floor if metric in LOWER_IS_BETTER else value >= floor


def _plots(outcome: FitOutcome, folder: Path) -> list[Path]:
    return ev.save_plots(
        folder,
        roc=outcome.roc or None,
        lift=outcome.tables.get("lift"),
        calibration=outcome.tables.get("calibration"),
        importance=outcome.importance or None,
        variance=outcome.variance or None,
        title=outcome.name,
    )


def record(
    cfg: AppConfig,
    outcome: FitOutcome,
    *,
    run_date: str,
    input_versions: dict[str, Any],
    job_run_id: str,
) -> Decision:
    """Log params/metrics/plots/model, register a version and apply the champion rule."""
    mlflow = mlflow_client(cfg)
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient()
    spec = outcome.spec
    metric = spec.selection.metric
    new_value = outcome.judge(outcome.model)
    # Five rows, only to infer the model's input signature.
    sample = outcome.evaluation_data.select(*outcome.feature_columns).limit(5).toPandas()
    with mlflow.start_run(
        experiment_id=_experiment_id(cfg, mlflow), run_name=f"{outcome.name}-{run_date}"
    ) as run:
        mlflow.log_params(
            {
                "model_name": outcome.name,
                "task": spec.task,
                "estimator": outcome.candidate,
                **{f"param_{k}": v for k, v in outcome.params.items()},
                "train_dates": ",".join(d.isoformat() for d in outcome.train_dates),
                "test_dates": ",".join(d.isoformat() for d in outcome.test_dates),
                "seed": spec.seed,
                "selection_metric": metric,
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in outcome.metrics.items()})
        mlflow.set_tags(
            {
                "run_date": run_date,
                "job_run_id": job_run_id,
                **{f"input_version.{k}": str(v) for k, v in input_versions.items()},
            }
        )
        mlflow.log_dict(dataclasses.asdict(spec), "spec.json")
        mlflow.log_dict({"candidates": outcome.candidates}, "candidates.json")
        mlflow.log_dict({"inputs": input_versions}, "inputs.json")
        for key, table in outcome.tables.items():
            mlflow.log_dict({key: table}, f"{key}.json")
        if outcome.importance:
            mlflow.log_dict({"importance": outcome.importance}, "feature_importance.json")
        with tempfile.TemporaryDirectory() as tmp:
            for path in _plots(outcome, Path(tmp)):
                mlflow.log_artifact(str(path), "plots")
        import pyspark

        context = outcome.evaluation_data.sparkSession.sparkContext
        # MLflow first tries to save straight to the artifact store with Spark and falls back
        # to a local copy; the failed first try is logged by Spark as an error. Quiet it.
        context.setLogLevel("FATAL")
        try:
            info = mlflow.spark.log_model(
                outcome.model,
                "model",
                registered_model_name=outcome.name,
                signature=infer_signature(sample),
                pip_requirements=[f"pyspark=={pyspark.__version__}"],
            )
        finally:
            context.setLogLevel(cfg.spark.log_level)
    version = str(info.registered_model_version)

    champion = current_champion(cfg, outcome.name)
    floor = spec.promotion.min_metric
    if not meets_floor(new_value, metric=metric, floor=floor):
        promoted, old = False, None
        reason = f"{metric} {new_value:.4f} does not reach the promotion floor {floor}"
    elif champion is None:
        promoted, old = True, None
        reason = f"no champion yet; {metric} {new_value:.4f}"
    else:
        try:
            old = outcome.judge(champion.model)
        except Exception as exc:  # e.g. the champion needs columns the source no longer has
            old = None
            promoted = True
            reason = f"champion v{champion.version} cannot score the test snapshot ({exc})"
        else:
            promoted = better(new_value, old, metric=metric, margin=spec.promotion.margin)
            verb = "beats" if promoted else "does not beat"
            reason = (
                f"{metric} {new_value:.4f} {verb} champion v{champion.version} ({old:.4f}) "
                f"by the margin {spec.promotion.margin} on the same test snapshot"
            )
    client.set_registered_model_alias(outcome.name, CHAMPION if promoted else CHALLENGER, version)
    client.set_model_version_tag(outcome.name, version, "decision", reason)
    client.set_model_version_tag(
        outcome.name, version, "role", CHAMPION if promoted else CHALLENGER
    )
    return Decision(
        outcome.name, version, run.info.run_id, promoted, reason, metric, new_value, old
    )


def current_champion(cfg: AppConfig, model_name: str) -> Champion | None:
    """The version aliased ``champion`` (loaded), or None when there is none."""
    mlflow = mlflow_client(cfg)
    client = mlflow.MlflowClient()
    try:
        found = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    model = mlflow.spark.load_model(f"models:/{model_name}@{CHAMPION}")
    return Champion(model_name, str(found.version), str(found.run_id), model)
