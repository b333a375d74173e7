"""MLflow: record a fitted model, register it, decide champion vs challenger, load champions."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

from decisionlake.config import AppConfig
from decisionlake.models import evaluate as ev
from decisionlake.models import promotion
from decisionlake.models.fit import FitOutcome
from decisionlake.models.promotion import CHAMPION, Check
from decisionlake.models.scoring import predict

EXPERIMENT = "decisionlake-models"


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
    role: str = CHAMPION
    checks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Champion:
    """The registered champion of a model."""

    model_name: str
    version: str
    run_id: str
    model: PipelineModel
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def mlflow_client(cfg: AppConfig) -> Any:
    """The ``mlflow`` module pointed at the environment's tracking server or store."""
    import mlflow

    uri = cfg.services.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri.removeprefix("sqlite:///")) or ".", exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow


def _dfs_tmpdir(cfg: AppConfig) -> str | None:
    """Where MLflow stages a Spark model for the executors: storage every node sees.

    Saving a Spark ML model writes from the executors and loading reads on them, and MLflow
    stages it on the default filesystem (``/tmp/mlflow``). On EMR that is HDFS, shared; on the
    local cluster the default filesystem is the artifacts bucket (conf/local-cluster), so the
    staging folder goes under the artifacts root there. In one process it does not matter.
    """
    if cfg.spark.mode != "cluster":
        return None
    return f"{cfg.paths.artifacts.rstrip('/')}/mlflow-staging/{uuid.uuid4().hex}"


def experiment_id(cfg: AppConfig, mlflow: Any, name: str = EXPERIMENT) -> str:
    """The experiment ``name``, created if missing. A tracking server stores artifacts itself;
    a bare store (SQLite) keeps them with the suite's artifacts: MLflow's default there is
    ``./mlruns`` under whatever folder the process runs in (a checkout, a driver's folder)."""
    found = mlflow.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    uri = cfg.services.mlflow_tracking_uri
    location = None if uri.startswith("http") else f"{cfg.paths.artifacts.rstrip('/')}/mlflow"
    return mlflow.create_experiment(name, artifact_location=location)


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
    production: DataFrame,
    production_date: str,
) -> Decision:
    """Log params/metrics/plots/model, register a version, run the promotion checks.

    ``production`` is today's snapshot (the rows ``score`` will see): the new version must
    score it sanely before it may become the champion.
    """
    mlflow = mlflow_client(cfg)
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient()
    spec = outcome.spec
    metric = spec.selection.metric
    new_value = outcome.judge(outcome.model)
    # Bounded: five rows to the driver, only to infer the model's input signature.
    sample = outcome.evaluation_data.select(*outcome.feature_columns).limit(5).toPandas()
    with mlflow.start_run(
        experiment_id=experiment_id(cfg, mlflow), run_name=f"{outcome.name}-{run_date}"
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
                dfs_tmpdir=_dfs_tmpdir(cfg),
            )
        finally:
            context.setLogLevel(cfg.spark.log_level)
    version = str(info.registered_model_version)
    logged = [a.path for a in client.list_artifacts(run.info.run_id)]
    champion = current_champion(cfg, outcome.name)
    checks = _checks(
        outcome,
        new_value=new_value,
        champion=champion,
        production=production,
        production_date=production_date,
        logged=logged,
        has_signature=info.signature is not None,
    )
    verdict = promotion.decide(checks, mode=spec.promotion.mode)
    old = next((c.champion_value for c in checks if c.name == promotion.CHAMPION_CHECK), None)
    client.log_dict(
        run.info.run_id, {"checks": [c.as_dict() for c in checks]}, "promotion_checks.json"
    )
    tags = {
        **{f"check.{c.name}": c.tag() for c in checks},
        promotion.CHECKS_PASSED_TAG: str(verdict.all_passed).lower(),
        promotion.MODE_TAG: verdict.mode,
        "failed_checks": ",".join(verdict.failed) or "none",
        "decision": verdict.reason[:5000],
        "role": verdict.role,
    }
    for key, value in tags.items():
        client.set_model_version_tag(outcome.name, version, key, value)
    client.set_registered_model_alias(outcome.name, verdict.role, version)
    return Decision(
        outcome.name,
        version,
        run.info.run_id,
        verdict.promoted,
        verdict.reason,
        metric,
        new_value,
        old,
        role=verdict.role,
        checks=tuple(c.as_dict() for c in checks),
    )


def _checks(
    outcome: FitOutcome,
    *,
    new_value: float,
    champion: Champion | None,
    production: DataFrame,
    production_date: str,
    logged: list[str],
    has_signature: bool,
) -> list[Check]:
    """Every promotion check of a new version, in a fixed order."""
    spec = outcome.spec
    metric = spec.selection.metric
    checks: list[Check] = []
    baseline = outcome.metrics.get(f"baseline_{metric}")
    if baseline is not None:
        checks.append(
            promotion.beats_baseline(
                new_value, baseline, metric=metric, margin=spec.promotion.baseline_margin
            )
        )
    else:
        checks.append(Check("beats_baseline", False, new_value, None, "no baseline computed"))
    if spec.promotion.min_metric is not None:
        checks.append(
            promotion.reaches_floor(new_value, metric=metric, floor=spec.promotion.min_metric)
        )
    old: float | None = None
    if champion is not None and refusal(champion) is not None:
        # A champion score refuses (no passing checks) cannot hold its place against a sound
        # new version: it is compared with as if there were none.
        checks.append(
            Check(promotion.CHAMPION_CHECK, True, new_value, None,
                  f"champion v{champion.version} has no passing checks: replaced")
        )  # fmt: skip
        champion = None
    elif champion is not None:
        try:
            old = outcome.judge(champion.model)
        except Exception:  # e.g. the champion needs columns the source no longer has
            old = None
    if not any(c.name == promotion.CHAMPION_CHECK for c in checks):
        checks.append(
            promotion.beats_champion(
                new_value,
                old,
                version=champion.version if champion else None,
                metric=metric,
                margin=spec.promotion.margin,
            )
        )
    scored = predict(outcome.model, production, spec=spec)
    column = "prediction" if spec.task == "clustering" else ev.SCORE
    low, high = promotion.score_range(
        spec,
        label_min=outcome.label_range[0],
        label_max=outcome.label_range[1],
        segments=int(outcome.metrics.get("segments", 0)),
    )
    stats = promotion.production_stats(scored, score_column=column)
    checks.append(promotion.scores_production(stats, low=low, high=high, as_of=production_date))
    if spec.task == "classification":
        checks.append(
            promotion.calibration(
                outcome.metrics.get("expected_calibration_error", float("nan")),
                bound=spec.promotion.max_calibration_error,
            )
        )
    checks.append(promotion.artifacts(logged, has_signature=has_signature))
    return checks


def current_champion(cfg: AppConfig, model_name: str) -> Champion | None:
    """The version aliased ``champion`` (loaded), or None when there is none."""
    mlflow = mlflow_client(cfg)
    client = mlflow.MlflowClient()
    try:
        found = client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    model = mlflow.spark.load_model(f"models:/{model_name}@{CHAMPION}", dfs_tmpdir=_dfs_tmpdir(cfg))
    return Champion(
        model_name, str(found.version), str(found.run_id), model, dict(found.tags or {})
    )


def refusal(champion: Champion) -> str | None:
    """Why ``score`` must not use this champion (None: it may).

    A champion qualifies when its promotion checks were recorded and passed, or when its spec
    promoted it in shadow mode (checks recorded, not enforced). Versions registered before the
    checks existed have none and are refused until retrained.
    """
    tags = champion.tags
    passed = tags.get(promotion.CHECKS_PASSED_TAG)
    if passed == "true":
        return None
    if passed is None:
        return (
            f"champion v{champion.version} has no promotion checks recorded; retrain it "
            "(decisionlake run train_models ...)"
        )
    if tags.get(promotion.MODE_TAG) == promotion.SHADOW:
        return None
    return f"champion v{champion.version} failed {tags.get('failed_checks', 'its checks')}"
