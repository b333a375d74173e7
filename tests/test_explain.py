"""Per-row reasons: tree path contributions add up to the model's output; reasons are words."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import load_config
from decisionlake.models.estimators import make_estimator
from decisionlake.models.explain import (
    CONTRIBUTIONS,
    explainer,
    tree_ensemble,
    with_contributions,
)
from decisionlake.models.scoring import predict, to_scores
from decisionlake.models.training_sets import preparation_stages

D = date(2026, 11, 24)


def _data(spark: SparkSession):
    rng = random.Random(3)
    rows = []
    for i in range(300):
        downloads = float(rng.randint(0, 9))
        sessions = float(rng.randint(0, 9))  # noise
        band = rng.choice(["<50M", ">1B"])
        label = 1.0 if downloads + rng.random() * 3 > 7 else 0.0
        rows.append((f"A{i}", D, downloads, sessions, band, label))
    return spark.createDataFrame(
        rows,
        "advisor_id string, as_of_date date, downloads_7d double, sessions_7d double, "
        "aum_band string, label double",
    ).withColumn("weight", F.lit(1.0))


def _spec():
    cfg = load_config("test", overrides={
        "models.advisor_propensity.features.numeric": ["downloads_7d", "sessions_7d"],
        "models.advisor_propensity.features.categorical": ["aum_band"],
        "models.advisor_propensity.top_features": 2,
    })  # fmt: skip
    return cfg.models["advisor_propensity"]


@pytest.mark.parametrize(
    ("estimator", "params", "output"),
    [
        ("random_forest", {"numTrees": 15, "maxDepth": 4}, "probability"),
        ("gbt", {"maxIter": 10, "maxDepth": 3}, "rawPrediction"),
    ],
)
def test_tree_contributions_add_up_to_the_models_output(
    spark: SparkSession, estimator: str, params: dict, output: str
) -> None:
    spec = _spec()
    est = make_estimator(estimator, seed=1)
    for key, value in params.items():
        est.model.set(est.model.getParam(key), value)
    data = _data(spark)
    stages = [*preparation_stages(spec, ["downloads_7d", "sessions_7d"]), *est.stages()]
    model = Pipeline(stages=stages).fit(data)
    predictions = model.transform(data)
    found = explainer(model, predictions)
    assert found is not None and found.names[:2] == ["downloads_7d", "sessions_7d"]
    trees, weights = tree_ensemble(next(s for s in model.stages if hasattr(s, "trees")))
    bias = sum(w * t.value[0] for t, w in zip(trees, weights, strict=True))
    rows = (
        with_contributions(predictions, found)
        .select(CONTRIBUTIONS, vector_to_array(F.col(output))[1].alias("out"))
        .collect()  # 300 rows
    )
    for row in rows:
        assert sum(row[CONTRIBUTIONS]) + bias == pytest.approx(row["out"], abs=1e-9)
    # The informative feature carries the weight, the noise feature much less.
    mean_abs = np.abs(np.array([r[CONTRIBUTIONS] for r in rows])).mean(axis=0)
    assert mean_abs[0] > 3 * mean_abs[1]


def test_scores_carry_readable_reasons_for_a_forest(spark: SparkSession) -> None:
    spec = _spec()
    est = make_estimator("random_forest", seed=1)
    data = _data(spark)
    stages = [*preparation_stages(spec, ["downloads_7d", "sessions_7d"]), *est.stages()]
    model = Pipeline(stages=stages).fit(data)
    predictions = predict(model, data.drop("label", "weight"), spec=spec)
    scores = to_scores(
        predictions, spec=spec, model_name="m", model_version="1", as_of=D, run_id="r",
        cutpoints=[0.5], explainer=explainer(model, predictions),
    )  # fmt: skip
    top = {
        r["advisor_id"]: r["top_features"]
        for r in scores.join(data.select("advisor_id", "downloads_7d"), "advisor_id")
        .where("downloads_7d = 9")
        .collect()
    }
    assert top and all(len(t) == 2 for t in top.values())
    first = next(iter(top.values()))[0]
    assert first["feature"] == "downloads_7d" and first["reason"] == "downloads_7d high"
    assert first["contribution"] > 0
    reasons = {f["reason"] for t in top.values() for f in t}
    assert reasons <= {"downloads_7d high", "sessions_7d high", "sessions_7d low",
                       "aum_band_<50M", "not aum_band_<50M", "aum_band_>1B",
                       "not aum_band_>1B"}, reasons  # fmt: skip
