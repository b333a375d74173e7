"""Scoring with a fitted pipeline: the same code for the ``score`` job and for notebooks."""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.models import evaluate as ev
from decisionlake.models.estimators import FEATURES
from decisionlake.models.spec import ModelSpec
from decisionlake.models.training import feature_names

SCORES_SCHEMA = T.StructType(
    [
        T.StructField("advisor_id", T.StringType(), False),
        T.StructField("model_name", T.StringType(), False),
        T.StructField("model_version", T.StringType(), False),
        T.StructField("as_of_date", T.DateType(), False),
        T.StructField("score", T.DoubleType()),
        T.StructField("decile", T.IntegerType()),
        T.StructField("segment", T.IntegerType()),
        T.StructField(
            "top_features",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("feature", T.StringType()),
                        T.StructField("contribution", T.DoubleType()),
                    ]
                )
            ),
        ),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("scored_at", T.TimestampType(), False),
    ]
)


def linear_explainer(model: PipelineModel, prepared: DataFrame) -> tuple[list[str], list[float]]:
    """(feature names, coefficients) of the linear stage on ``features``; empty for trees."""
    for stage in model.stages:
        if hasattr(stage, "coefficients") and stage.getOrDefault("featuresCol") == FEATURES:
            return feature_names(prepared), [float(c) for c in stage.coefficients.toArray()]
    return [], []


def top_contributions(names: list[str], weights: list[float], *, top: int) -> Column:
    """The ``top`` features by abs(coefficient * standardised value) (largest first)."""
    if not names or top <= 0:
        return F.lit(None).cast(SCORES_SCHEMA["top_features"].dataType)
    values = vector_to_array(F.col(FEATURES))
    name_arr = F.array(*[F.lit(n) for n in names])
    weight_arr = F.array(*[F.lit(w) for w in weights])
    pairs = F.transform(
        F.sequence(F.lit(0), F.lit(len(names) - 1)),
        lambda i: F.struct(
            name_arr[i].alias("feature"),
            F.round(values[i] * weight_arr[i], 5).alias("contribution"),
        ),
    )
    by_size = F.array_sort(
        pairs,
        lambda a, b: (
            F.when(F.abs(a["contribution"]) > F.abs(b["contribution"]), -1)
            .when(F.abs(a["contribution"]) < F.abs(b["contribution"]), 1)
            .otherwise(0)
        ),
    )
    return F.slice(by_size, 1, top)


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
    explainer: tuple[list[str], list[float]] = ([], []),
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
        "top_features": top_contributions(*explainer, top=spec.top_features),
        "run_id": F.lit(run_id),
        "scored_at": F.current_timestamp(),
    }
    return predictions.select(
        *[columns[f.name].cast(f.dataType).alias(f.name) for f in SCORES_SCHEMA]
    )


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
        explainer=linear_explainer(model, predictions),
    )
