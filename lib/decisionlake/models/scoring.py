"""Scoring with a fitted pipeline: the same code for the ``score`` job and for notebooks."""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.frames import project
from decisionlake.models import evaluate as ev
from decisionlake.models.explain import (
    REASON_TYPE,
    Explainer,
    explainer,
    top_reasons,
    with_contributions,
)
from decisionlake.models.spec import ModelSpec

SCORES_SCHEMA = T.StructType(
    [
        T.StructField("advisor_id", T.StringType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.StringType(), False),
        T.StructField("as_of_date", T.DateType(), False),
        T.StructField("score", T.DoubleType()),
        T.StructField("decile", T.IntegerType()),
        T.StructField("segment", T.IntegerType()),
        T.StructField("top_features", REASON_TYPE),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("scored_at", T.TimestampType(), False),
    ]
)


def predict(model: PipelineModel, snapshot: DataFrame, *, spec: ModelSpec) -> DataFrame:
    """The model's output with a ``score`` column (probability, prediction or NULL)."""
    out = model.transform(snapshot)
    if spec.task == "classification":
        return out.withColumn(ev.SCORE, ev.positive_probability())
    if spec.task == "regression":
        return out.withColumn(ev.SCORE, F.col("prediction").cast("double"))
    return out.withColumn(ev.SCORE, F.lit(None).cast("double"))


def to_scores(
    predictions: DataFrame,
    *,
    spec: ModelSpec,
    model_name: str,
    model_version: str,
    as_of: date,
    run_id: str,
    cutpoints: list[float],
    explainer: Explainer | None = None,
) -> DataFrame:
    """Rows of ``gold.scores`` from :func:`predict` output (deciles from ``cutpoints``)."""
    score = F.col(ev.SCORE)
    columns: dict[str, Any] = {
        "advisor_id": F.col(spec.source.id_column),
        "model_name": F.lit(model_name),
        "model_version": F.lit(model_version),
        "as_of_date": F.lit(as_of),
        "score": score,
        "decile": ev.decile_of(score, cutpoints) if cutpoints else F.lit(None),
        "segment": F.col("prediction") if spec.task == "clustering" else F.lit(None),
        "top_features": top_reasons(explainer, top=spec.top_features),
        "run_id": F.lit(run_id),
        "scored_at": F.current_timestamp(),
    }
    return project(with_contributions(predictions, explainer), SCORES_SCHEMA, columns)


def score(
    model: PipelineModel,
    snapshot: DataFrame,
    *,
    spec: ModelSpec,
    model_name: str,
    model_version: str,
    as_of: date,
    run_id: str,
) -> DataFrame:
    """Notebook convenience: predict, compute decile cut-points (one aggregate), shape rows."""
    predictions = predict(model, snapshot, spec=spec)
    cutpoints = (
        ev.decile_cutpoints(predictions, F.col(ev.SCORE)) if spec.task != "clustering" else []
    )
    return to_scores(
        predictions,
        spec=spec,
        model_name=model_name,
        model_version=model_version,
        as_of=as_of,
        run_id=run_id,
        cutpoints=cutpoints,
        explainer=explainer(model, predictions),
    )
