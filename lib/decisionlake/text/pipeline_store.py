"""Saving, versioning (MLflow) and loading the fitted text pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyarrow.fs import FileType
from pyspark.ml import PipelineModel

from decisionlake.config import AppConfig
from decisionlake.io.storage import filesystem_for

EXPERIMENT = "decisionlake-text-pipeline"


@dataclass(frozen=True)
class TextModelVersion:
    """A fitted text pipeline and where it is recorded."""

    version: str
    path: str
    mlflow_run_id: str


def _mlflow(cfg: AppConfig) -> Any:
    from decisionlake.models.registry import mlflow_client

    return mlflow_client(cfg)


def _experiment_id(cfg: AppConfig, mlflow: Any) -> str:
    from decisionlake.models.registry import experiment_id

    return experiment_id(cfg, mlflow, EXPERIMENT)


def record_version(
    cfg: AppConfig,
    model: PipelineModel,
    *,
    version: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    topics: list[dict[str, Any]],
) -> TextModelVersion:
    """Save the pipeline under the artifacts root and record the version in MLflow."""
    path = f"{cfg.paths.artifacts.rstrip('/')}/models/text_pipeline/{version}"
    model.write().overwrite().save(path)
    mlflow = _mlflow(cfg)
    with mlflow.start_run(
        experiment_id=_experiment_id(cfg, mlflow), run_name=f"text-pipeline-{version}"
    ) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"model_version": version, "model_path": path})
        mlflow.log_dict({"topics": topics}, "topics.json")
    return TextModelVersion(version, path, run.info.run_id)


def find_version(cfg: AppConfig, version: str = "") -> TextModelVersion | None:
    """The pinned version, or the latest recorded one; None when none was fitted yet."""
    mlflow = _mlflow(cfg)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    query = f"tags.model_version = '{version}'" if version else "tags.model_path != ''"
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=query,
        order_by=["start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        if version:
            raise LookupError(f"text.model_version={version!r} is not recorded in MLflow")
        return None
    tags = runs[0].data.tags
    found = TextModelVersion(tags["model_version"], tags["model_path"], runs[0].info.run_id)
    filesystem, path = filesystem_for(f"{found.path}/metadata", cfg.storage)
    if filesystem.get_file_info(path).type == FileType.NotFound:
        raise FileNotFoundError(
            f"text pipeline {found.version} is recorded in MLflow but {found.path} is gone; "
            "restore it, pin another text.model_version, or fit anew with --set text.refit=true"
        )
    return found


def load(version: TextModelVersion) -> PipelineModel:
    return PipelineModel.load(version.path)
