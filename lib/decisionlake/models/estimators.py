"""MLlib estimators by name, wired to the columns the training pipeline produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.ml import Estimator
from pyspark.ml.classification import (
    GBTClassifier,
    LinearSVC,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans
from pyspark.ml.regression import GBTRegressor, LinearRegression, RandomForestRegressor

FEATURES = "features"
LABEL = "label"
WEIGHT = "weight"
REDUCED = "pca_features"


CLASSES: dict[str, type] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gbt": GBTClassifier,
    "linear_svc": LinearSVC,
    "linear_regression": LinearRegression,
    "gbt_regressor": GBTRegressor,
    "random_forest_regressor": RandomForestRegressor,
    "kmeans": KMeans,
    "bisecting_kmeans": BisectingKMeans,
    "gaussian_mixture": GaussianMixture,
}


def has_param(name: str, param: str) -> bool:
    """Whether estimator ``name`` has parameter ``param`` (checked without a JVM)."""
    from pyspark.ml.param import Param

    return isinstance(getattr(CLASSES[name], param, None), Param)


@dataclass(frozen=True)
class NamedEstimator:
    """The estimator whose parameters a spec sets, and the stages it contributes."""

    name: str
    model: Estimator
    extra_stages: list[Any] = field(default_factory=list)

    def stages(self) -> list[Any]:
        return [self.model, *self.extra_stages]


def make_estimator(name: str, *, seed: int, features: str = FEATURES) -> NamedEstimator:
    """A fresh estimator for ``name`` (see :mod:`decisionlake.models.spec` for the names)."""
    common = {"featuresCol": features, "labelCol": LABEL}
    if name == "logistic_regression":
        return NamedEstimator(name, LogisticRegression(**common, weightCol=WEIGHT, maxIter=100))
    if name == "random_forest":
        return NamedEstimator(name, RandomForestClassifier(**common, weightCol=WEIGHT, seed=seed))
    if name == "gbt":
        return NamedEstimator(name, GBTClassifier(**common, weightCol=WEIGHT, seed=seed))
    if name == "linear_svc":
        # LinearSVC gives margins, not probabilities: a logistic fit on the margin (Platt
        # scaling) calibrates them, inside the same pipeline so scoring sees probabilities.
        svc = LinearSVC(
            **common, weightCol=WEIGHT, rawPredictionCol="svc_margin", predictionCol="svc_class"
        )
        platt = LogisticRegression(featuresCol="svc_margin", labelCol=LABEL, weightCol=WEIGHT)
        return NamedEstimator(name, svc, [platt])
    if name == "linear_regression":
        return NamedEstimator(name, LinearRegression(**common, maxIter=100))
    if name == "gbt_regressor":
        return NamedEstimator(name, GBTRegressor(**common, seed=seed))
    if name == "random_forest_regressor":
        return NamedEstimator(name, RandomForestRegressor(**common, seed=seed))
    if name == "kmeans":
        return NamedEstimator(name, KMeans(featuresCol=REDUCED, seed=seed))
    if name == "bisecting_kmeans":
        return NamedEstimator(name, BisectingKMeans(featuresCol=REDUCED, seed=seed))
    if name == "gaussian_mixture":
        return NamedEstimator(
            name, GaussianMixture(featuresCol=REDUCED, seed=seed, probabilityCol="membership")
        )
    raise ValueError(f"unknown estimator {name!r}")
