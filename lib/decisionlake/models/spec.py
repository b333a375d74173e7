"""Model specs (``conf/models/<name>.yaml``): what to learn, from which table, how to select.

A spec alone is enough to train: a new model on a new table is a new YAML file. The
dataclasses are built strictly by the config loader (unknown keys and wrong types fail with
their key path); :func:`check_spec` adds the checks that need MLlib (estimators, parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["classification", "regression", "clustering"]


@dataclass(frozen=True)
class TableRef:
    """A table by logical name (``gold.advisor_360``) or URI, in any format Spark reads."""

    table: str
    format: Literal["delta", "parquet", "csv"] = "delta"


@dataclass(frozen=True)
class SourceSpec(TableRef):
    """Feature snapshots: one row per id per as-of date."""

    id_column: str = "advisor_id"
    as_of_column: str = "as_of_date"


@dataclass(frozen=True)
class FeatureSpec:
    """Columns of the source used as features, by kind."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    vector: list[str] = field(default_factory=list)
    cap_quantiles: list[float] | None = field(default_factory=lambda: [0.01, 0.99])
    """Numeric features are clipped to these quantiles of the training data (outliers);
    null: no capping."""

    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.vector]


@dataclass(frozen=True)
class LabelSpec:
    """The label, one of two kinds.

    Events (``table``): the events of ``table`` in the ``horizon_days`` after each as-of date;
    ``value`` empty: 1.0 when at least one event matches (classification), otherwise the sum of
    the SQL expression ``value`` over the matching events (regression; 0 when none).

    A column (``column``) of the source itself, for any labelled table (one row per entity):
    with ``positive`` the label is 1.0 where the column equals it (``"yes"``, ``true``, ``1``),
    else the column's value (a boolean or 0/1 column for a classifier, a number to regress).
    """

    table: str = ""
    format: Literal["delta", "parquet", "csv"] = "delta"
    id_column: str = "advisor_id"
    time_column: str = "event_date"
    where: str = ""
    horizon_days: int = 30
    value: str = ""
    column: str = ""
    positive: Any = None

    @property
    def from_column(self) -> bool:
        return bool(self.column)


@dataclass(frozen=True)
class SplitSpec:
    """How the test rows are held out.

    ``as_of`` (default): the latest ``selection.test_dates`` as-of dates (event labels).
    Without as-of dates: ``random`` or ``stratified`` (by label) by a keyed hash of the id, or
    ``time``: the latest ``test_fraction`` of rows by ``time_column``; folds are then random
    (stratified for ``stratified``).
    """

    kind: Literal["as_of", "random", "stratified", "time"] = "as_of"
    test_fraction: float = 0.25
    seed: int = 42
    time_column: str = ""


@dataclass(frozen=True)
class CandidateSpec:
    """One estimator with fixed parameters and a grid of alternatives."""

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectionSpec:
    """How candidates are compared: metric, validation scheme, time-based test split."""

    metric: str
    method: Literal["cross_validation", "train_validation_split"] = "cross_validation"
    folds: int = 3
    parallelism: int = 2
    test_dates: int = 1
    """The latest mature as-of dates held out as the test snapshot."""
    embargo: bool = True
    """Train only on as-of dates whose label window ends before the first test date."""
    split: SplitSpec = field(default_factory=SplitSpec)


@dataclass(frozen=True)
class PromotionSpec:
    """When a new model becomes the champion (checks in :mod:`decisionlake.models.promotion`)."""

    margin: float = 0.0
    """It must beat the champion by at least this much on the same test snapshot."""
    min_metric: float | None = None
    """And reach at least this (at most, for error metrics) to be promoted at all."""
    baseline_margin: float = 0.0
    """It must beat the baseline on the test snapshot by at least this much."""
    max_calibration_error: float = 0.1
    """Classifiers: expected calibration error on the test snapshot at most this."""
    mode: Literal["enforce", "shadow"] = "enforce"
    """shadow: every check is evaluated and recorded, only the champion comparison decides."""


@dataclass(frozen=True)
class ReductionSpec:
    """Standardise, then PCA keeping enough components for ``variance`` explained."""

    variance: float = 0.9
    max_components: int = 10


@dataclass(frozen=True)
class ModelSpec:
    """A model, declared once."""

    task: Task
    description: str
    source: SourceSpec
    features: FeatureSpec
    candidates: list[CandidateSpec]
    selection: SelectionSpec
    label: LabelSpec | None = None
    promotion: PromotionSpec = field(default_factory=PromotionSpec)
    reduction: ReductionSpec | None = None
    balance_classes: bool = False
    """Class weights (weightCol) for imbalanced labels; off by default: weighted probabilities
    are not calibrated (the calibration check would reject them) and ranking does not gain."""
    top_features: int = 3
    seed: int = 42
    baseline: str = ""
    """SQL expression of a trivial score (higher = more likely) the model must beat; empty:
    the training prior (classification), the training mean (regression), a random assignment
    to as many segments (clustering)."""
    snapshot_dates: int = 0
    """How many of the latest as-of dates to learn from (0: all available)."""


CLASSIFIERS = ("logistic_regression", "random_forest", "gbt", "linear_svc")
REGRESSORS = ("linear_regression", "gbt_regressor", "random_forest_regressor")
CLUSTERERS = ("kmeans", "bisecting_kmeans", "gaussian_mixture")
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("areaUnderROC", "areaUnderPR"),
    "regression": ("rmse", "mae", "r2"),
    "clustering": ("silhouette",),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


def check_spec(name: str, spec: ModelSpec) -> None:
    """Checks beyond types: label presence, estimator names and their parameters."""
    from decisionlake.config import ConfigError

    allowed = {
        "classification": CLASSIFIERS,
        "regression": REGRESSORS,
        "clustering": CLUSTERERS,
    }[spec.task]
    where = f"models.{name}"
    if spec.task != "clustering" and spec.label is None:
        raise ConfigError(f"{where}.label: required for a {spec.task} model")
    if spec.task == "clustering" and spec.label is not None:
        raise ConfigError(f"{where}.label: a clustering model has no label")
    if spec.label is not None:
        _check_label(where, spec)
    if spec.selection.metric not in METRICS[spec.task]:
        raise ConfigError(
            f"{where}.selection.metric: {spec.selection.metric!r} is not one of "
            f"{list(METRICS[spec.task])} for {spec.task}"
        )
    if not spec.features.all():
        raise ConfigError(f"{where}.features: no feature columns")
    if not spec.candidates:
        raise ConfigError(f"{where}.candidates: at least one estimator is needed")
    if spec.selection.folds < 2 or spec.selection.test_dates < 1:
        raise ConfigError(f"{where}.selection: folds >= 2 and test_dates >= 1 are required")
    caps = spec.features.cap_quantiles
    if caps is not None and (len(caps) != 2 or not 0 <= caps[0] < caps[1] <= 1):
        raise ConfigError(f"{where}.features.cap_quantiles: need 0 <= low < high <= 1")
    from decisionlake.models.estimators import has_param

    for i, cand in enumerate(spec.candidates):
        path = f"{where}.candidates[{i}]"
        if cand.estimator not in allowed:
            raise ConfigError(
                f"{path}.estimator: unknown estimator {cand.estimator!r} for {spec.task} "
                f"(known: {', '.join(allowed)})"
            )
        for key in [*cand.params, *cand.grid]:
            if not has_param(cand.estimator, key):
                raise ConfigError(f"{path}: {cand.estimator} has no parameter {key!r}")
        for key, values in cand.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{path}.grid.{key}: expected a non-empty list")


def _check_label(where: str, spec: ModelSpec) -> None:
    from decisionlake.config import ConfigError

    label, split = spec.label, spec.selection.split
    assert label is not None
    if label.from_column == bool(label.table):
        raise ConfigError(
            f"{where}.label: give either table (events after each as-of date) or column "
            "(a label column of the source)"
        )
    if label.from_column:
        if split.kind == "as_of":
            raise ConfigError(
                f"{where}.selection.split.kind: a label column has no as-of dates to split "
                "by; use random, stratified or time"
            )
        if split.kind == "time" and not split.time_column:
            raise ConfigError(f"{where}.selection.split.time_column: required for kind time")
        if split.kind == "stratified" and spec.task != "classification":
            raise ConfigError(f"{where}.selection.split.kind: stratified needs a classifier")
        if label.value or label.where:
            raise ConfigError(f"{where}.label: value/where apply to event labels only")
    elif split.kind != "as_of":
        raise ConfigError(f"{where}.selection.split.kind: event labels split by as_of dates")
    if not 0 < split.test_fraction < 1:
        raise ConfigError(f"{where}.selection.split.test_fraction: must be between 0 and 1")
