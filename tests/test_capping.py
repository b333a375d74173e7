"""Capping, imputation and scaling are fitted inside the pipeline, on the fold's rows only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import load_config
from decisionlake.models.capping import QuantileCapper, QuantileCapperModel
from decisionlake.models.training_sets import preparation_stages

D = date(2026, 11, 20)


def _frame(spark: SparkSession, rows: list[tuple[str, int, float]]):
    return spark.createDataFrame(rows, "advisor_id string, fold int, downloads_7d double")


def _spec():
    cfg = load_config(
        "test",
        overrides={
            "models.advisor_propensity.features.numeric": ["downloads_7d"],
            "models.advisor_propensity.features.categorical": [],
            "models.advisor_propensity.features.cap_quantiles": [0.01, 0.99],  # local: none
        },
    )
    return cfg.models["advisor_propensity"]


def test_a_validation_fold_outlier_does_not_shape_the_training_folds_caps(
    spark: SparkSession,
) -> None:
    # Fold 0 trains (values 0..99), fold 1 validates and holds a planted outlier block.
    train_rows = [(f"A{i}", 0, float(i)) for i in range(100)]
    validation_rows = [(f"B{i}", 1, 1_000_000.0) for i in range(30)]
    data = _frame(spark, train_rows + validation_rows)
    fold_train = data.where(F.col("fold") == 0)
    prepared = Pipeline(stages=preparation_stages(_spec(), ["downloads_7d"])).fit(fold_train)
    capper = next(s for s in prepared.stages if isinstance(s, QuantileCapperModel))
    low, high = capper.getOrDefault(capper.bounds)[0]
    assert 0.0 <= low <= 2.0 and 97.0 <= high <= 99.0  # the fold's own 1% / 99% quantiles
    capped = prepared.transform(data.where(F.col("fold") == 1))
    assert capped.agg(F.max("downloads_7d__cap")).first()[0] == high  # outlier capped to it
    # Fitted on every row (what fixed caps computed before the split did), the outlier leaks:
    leaky = QuantileCapper(inputCols=["downloads_7d"], outputCols=["c"]).fit(data)
    assert leaky.getOrDefault(leaky.bounds)[0][1] == 1_000_000.0


def test_the_capper_is_saved_and_loaded_with_the_pipeline(
    spark: SparkSession, tmp_path: Path
) -> None:
    data = _frame(spark, [(f"A{i}", 0, float(i)) for i in range(50)])
    model = Pipeline(stages=preparation_stages(_spec(), ["downloads_7d"])).fit(data)
    model.write().overwrite().save(str(tmp_path / "model"))
    loaded = PipelineModel.load(str(tmp_path / "model"))
    capper = next(s for s in loaded.stages if isinstance(s, QuantileCapperModel))
    original = next(s for s in model.stages if isinstance(s, QuantileCapperModel))
    assert capper.getOrDefault(capper.bounds) == original.getOrDefault(original.bounds)
    column = "downloads_7d__cap"
    assert sorted(r[column] for r in loaded.transform(data).select(column).collect()) == sorted(
        r[column] for r in model.transform(data).select(column).collect()
    )
