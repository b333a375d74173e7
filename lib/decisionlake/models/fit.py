"""Fit a model from its spec: time-based split, one grid search over every candidate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator, Evaluator, RegressionEvaluator
from pyspark.ml.feature import PCA
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.core.logs import JobLogger
from decisionlake.models import evaluate as ev
from decisionlake.models.estimators import FEATURES, LABEL, REDUCED, WEIGHT, make_estimator
from decisionlake.models.sources import TrainingDataError, check_columns
from decisionlake.models.spec import LOWER_IS_BETTER, ModelSpec
from decisionlake.models.training_sets import (
    IS_TEST,
    TIME_KEY,
    feature_names,
    feature_profile,
    preparation_stages,
    time_key,
    time_split,
    with_class_weights,
    with_column_label,
    with_fold,
    with_labels,
    with_row_split,
)


@dataclass
class FitOutcome:
    """A fitted model with everything needed to record and judge it."""

    name: str
    spec: ModelSpec
    model: PipelineModel
    candidate: str
    params: dict[str, Any]
    metrics: dict[str, float]
    candidates: list[dict[str, Any]]
    train_dates: list[date]
    test_dates: list[date]
    evaluation_data: DataFrame
    """The test snapshot (or, for clustering, the snapshot clustered): champions meet here."""
    judge: Callable[[PipelineModel], float]
    """The selection metric of any model on ``evaluation_data``."""
    feature_columns: list[str]
    label_range: tuple[float, float] = (0.0, 0.0)
    """The training label's (min, max): the span a sane regression score stays near."""
    importance: list[tuple[str, float]] = field(default_factory=list)
    tables: dict[str, Any] = field(default_factory=dict)
    variance: list[float] = field(default_factory=list)
    roc: list[tuple[float, float]] = field(default_factory=list)
    dropped_features: list[str] = field(default_factory=list)


def _estimator_slot(model: PipelineModel, n_prep: int) -> Any:
    return model.stages[n_prep]


def _importance(stage: Any, names: list[str]) -> list[tuple[str, float]]:
    if hasattr(stage, "featureImportances"):
        values = stage.featureImportances.toArray()
    elif hasattr(stage, "coefficients"):
        values = abs(stage.coefficients.toArray())
    else:
        return []
    pairs = [(names[i] if i < len(names) else f"f{i}", float(v)) for i, v in enumerate(values)]
    return sorted(pairs, key=lambda p: -p[1])


def _param_maps(spec: ModelSpec, pipeline: Pipeline, prep: list[Any]):
    """Every candidate's grid as param maps of one pipeline (its ``stages`` swapped)."""
    maps, described = [], []
    for cand in spec.candidates:
        est = make_estimator(cand.estimator, seed=spec.seed)
        for key, value in cand.params.items():
            est.model.set(est.model.getParam(key), value)
        grid = ParamGridBuilder()
        for key, values in cand.grid.items():
            grid.addGrid(est.model.getParam(key), values)
        for param_map in grid.build():
            full = dict(param_map)
            full[pipeline.stages] = [*prep, *est.stages()]
            maps.append(full)
            described.append(
                {
                    "estimator": cand.estimator,
                    "params": {
                        **cand.params,
                        **{p.name: v for p, v in param_map.items()},
                    },
                }
            )
    return maps, described


def split_stats(data: DataFrame) -> dict:
    """Rows, label mean/min/max and distinct values of the train and test rows, and the rows
    without a label (one aggregate)."""
    rows = (
        data.groupBy(F.col(IS_TEST).alias("is_test"), F.col(LABEL).isNull().alias("unlabelled"))
        .agg(
            F.count("*").alias("rows"),
            F.avg(LABEL).alias("rate"),
            F.min(LABEL).alias("min"),
            F.max(LABEL).alias("max"),
            F.countDistinct(LABEL).alias("distinct"),
        )
        .collect()  # at most four rows
    )
    empty = {"rows": 0, "rate": None, "min": None, "max": None, "distinct": 0}
    found = {bool(r["is_test"]): r.asDict() for r in rows if not r["unlabelled"]}
    unlabelled = sum(r["rows"] for r in rows if r["unlabelled"])
    return {
        "train": found.get(False, empty),
        "test": found.get(True, empty),
        "unlabelled": unlabelled,
    }


def _event_label_rows(
    spec: ModelSpec, name: str, snapshots: DataFrame, events: DataFrame, *, label_through: date
) -> tuple[DataFrame, list[date], list[date], int]:
    """Snapshots labelled by later events; the latest mature as-of dates are the test rows."""
    assert spec.label is not None
    as_of = spec.source.as_of_column
    labelled = snapshots.transform(
        with_labels, events, source=spec.source, label=spec.label, label_through=label_through
    )
    dates = sorted(
        r[0]
        for r in labelled.select(as_of).distinct().collect()  # one row per as-of date
    )
    if spec.snapshot_dates:
        dates = dates[-spec.snapshot_dates :]
    try:
        train_dates, test_dates = time_split(
            dates,
            test_dates=spec.selection.test_dates,
            embargo=spec.selection.embargo,
            horizon_days=spec.label.horizon_days,
        )
    except ValueError as exc:
        raise TrainingDataError(f"models.{name}: {exc}") from None
    folds = min(spec.selection.folds, len(train_dates))
    data = (
        labelled.where(F.col(as_of).isin(*train_dates, *test_dates))
        .transform(with_fold, as_of_column=as_of, dates=train_dates, folds=max(folds, 1))
        .withColumn(IS_TEST, F.col(as_of).isin(*test_dates))
    )
    return data, train_dates, test_dates, folds


def _column_label_rows(
    spec: ModelSpec, snapshots: DataFrame
) -> tuple[DataFrame, list[date], list[date], int]:
    """A labelled table split by rows (random, stratified or by time)."""
    assert spec.label is not None
    split = spec.selection.split
    labelled = snapshots.transform(with_column_label, label=spec.label)
    threshold = None
    if split.kind == "time":
        # Dates and timestamps as epoch seconds (approxQuantile takes numbers only).
        labelled = labelled.withColumn(TIME_KEY, time_key(F.col(split.time_column)))
        found = labelled.approxQuantile(TIME_KEY, [1 - split.test_fraction], 0.001)
        threshold = found[0] if found else None  # one number
    data = labelled.transform(
        with_row_split,
        id_column=spec.source.id_column,
        kind=split.kind,
        test_fraction=split.test_fraction,
        seed=split.seed,
        folds=spec.selection.folds,
        time_column=TIME_KEY if split.kind == "time" else "",
        time_threshold=threshold,
    ).drop(TIME_KEY)
    # Rows without a label are counted (unlabelled_rows) and cannot be learnt from.
    return data, [], [], spec.selection.folds


def check_split(
    name: str,
    spec: ModelSpec,
    train_dates: list[date],
    test_dates: list[date],
    train: dict[str, Any],
    test: dict[str, Any],
) -> None:
    """Refuse a split that would evaluate on training rows or on nothing (exit 2)."""
    where = f"models.{name}"
    overlap = sorted(set(train_dates) & set(test_dates))
    if overlap:
        raise TrainingDataError(
            f"{where}: test date(s) {', '.join(map(str, overlap))} are also training dates"
        )
    if train_dates and test_dates and max(train_dates) >= min(test_dates):
        raise TrainingDataError(
            f"{where}: training date {max(train_dates)} is not before the test snapshot "
            f"{min(test_dates)}"
        )
    if not train["rows"] or not test["rows"]:
        raise TrainingDataError(
            f"{where}: {train['rows']} training and {test['rows']} test rows on train dates "
            f"{', '.join(map(str, train_dates))} / test dates {', '.join(map(str, test_dates))}; "
            "use a later --run-date or more history"
        )
    if spec.task == "classification" and (
        (train["min"] is not None and train["min"] < 0)
        or (train["max"] is not None and train["max"] > 1)
        or train["distinct"] > 2
    ):
        raise TrainingDataError(
            f"{where}: the label is not binary (values {train['min']} .. {train['max']}, "
            f"{train['distinct']} distinct); set label.positive to the value that means 1"
        )
    if spec.task == "classification" and train["distinct"] < 2:
        raise TrainingDataError(
            f"{where}: the training label is constant ({train['min']}) on "
            f"{', '.join(map(str, train_dates))}; a classifier needs both classes"
        )


def fit_supervised(
    spec: ModelSpec,
    *,
    name: str,
    snapshots: DataFrame,
    events: DataFrame | None,
    label_through: date,
    log: JobLogger,
) -> FitOutcome:
    """Build the labelled rows, select among all candidates, evaluate on the test rows.

    Event labels: the latest as-of dates are the test snapshot, folds are whole as-of dates.
    A label column (any labelled table): a random, stratified or time split of the rows.
    """
    assert spec.label is not None
    src, label = spec.source, spec.label
    as_of = "" if label.from_column else src.as_of_column
    check_columns(
        snapshots,
        [src.id_column, as_of, label.column, spec.selection.split.time_column,
         *spec.features.all()],
        what=f"models.{name}.source/features/label",
        table=src.table,
    )  # fmt: skip
    if events is not None and not label.from_column:
        check_columns(
            events,
            [label.id_column, label.time_column],
            what=f"models.{name}.label",
            table=label.table,
        )
    with log.stage("training_set", model=name, label_through=label_through.isoformat()) as st:
        if label.from_column:
            data, train_dates, test_dates, folds = _column_label_rows(spec, snapshots)
        else:
            assert events is not None
            data, train_dates, test_dates, folds = _event_label_rows(
                spec, name, snapshots, events, label_through=label_through
            )
        data = data.persist(StorageLevel.MEMORY_AND_DISK)
        labelled = F.col(LABEL).isNotNull()
        train = data.where(~F.col(IS_TEST) & labelled)
        test = data.where(F.col(IS_TEST) & labelled)
        profile = feature_profile(train, spec.features)
        splits = split_stats(data)
        stats, test_stats = splits["train"], splits["test"]
        st.add(
            split=spec.selection.split.kind,
            train_dates=[d.isoformat() for d in train_dates],
            test_dates=[d.isoformat() for d in test_dates],
            train_rows=stats["rows"],
            test_rows=test_stats["rows"],
            unlabelled_rows=splits["unlabelled"],
            train_label_mean=round(float(stats["rate"] or 0.0), 5),
            features_without_values=profile["empty"],
        )
        check_split(name, spec, train_dates, test_dates, stats, test_stats)
    classification = spec.task == "classification"
    if classification and spec.balance_classes:
        train = train.transform(with_class_weights, positive_rate=float(stats["rate"] or 0.0))
    else:
        train = train.withColumn(WEIGHT, F.lit(1.0))

    prep = preparation_stages(spec, profile["usable"])
    pipeline = Pipeline(stages=prep)
    maps, described = _param_maps(spec, pipeline, prep)
    metric = spec.selection.metric
    evaluator: Evaluator = (
        BinaryClassificationEvaluator(
            rawPredictionCol="probability", labelCol=LABEL, metricName=metric
        )
        if classification
        else RegressionEvaluator(labelCol=LABEL, metricName=metric)
    )
    with log.stage("grid_search", model=name, candidates=len(maps), folds=folds) as st:
        if spec.selection.method == "cross_validation" and folds >= 2:
            tuner: Any = CrossValidator(
                estimator=pipeline,
                estimatorParamMaps=maps,
                evaluator=evaluator,
                numFolds=folds,
                foldCol="fold",
                parallelism=spec.selection.parallelism,
                seed=spec.seed,
            )
        else:
            tuner = TrainValidationSplit(
                estimator=pipeline,
                estimatorParamMaps=maps,
                evaluator=evaluator,
                trainRatio=0.75,
                parallelism=spec.selection.parallelism,
                seed=spec.seed,
            )
        started = time.perf_counter()
        tuned = tuner.fit(train)
        scores = list(getattr(tuned, "avgMetrics", None) or tuned.validationMetrics)
        pick = min if metric in LOWER_IS_BETTER else max
        best = scores.index(pick(scores))
        for entry, value in zip(described, scores, strict=True):
            entry["validation_" + metric] = float(value)
        model: PipelineModel = tuned.bestModel
        st.add(
            best=described[best]["estimator"],
            best_params=described[best]["params"],
            validation_metric=round(scores[best], 5),
            fit_seconds=round(time.perf_counter() - started, 1),
        )

    with log.stage("evaluate", model=name, test_dates=[d.isoformat() for d in test_dates]) as st:
        predictions = model.transform(test).persist(StorageLevel.MEMORY_AND_DISK)
        tables: dict[str, Any] = {}
        roc: list[tuple[float, float]] = []
        if classification:
            metrics = ev.classification_metrics(predictions)
            p = ev.positive_probability()
            tables["lift"] = ev.lift_table(predictions, p)
            tables["calibration"] = ev.calibration_table(predictions, p)
            roc = ev.roc_points(predictions, p)
            metrics.update(ev.top_decile_lift(tables["lift"]))
            metrics["expected_calibration_error"] = ev.expected_calibration_error(
                tables["calibration"]
            )
            # The baseline: the spec's rule, or the training prior for everyone.
            prior = float(stats["rate"] or 0.0)
            baseline = F.expr(spec.baseline) if spec.baseline else F.lit(prior)
            for name_ in dict.fromkeys(("areaUnderROC", metric)):
                metrics[f"baseline_{name_}"] = ev.auc(test, baseline, name_)
        else:
            metrics = ev.regression_metrics(predictions)
            # The baseline: the spec's rule, or the training mean for everyone.
            mean = float(stats["rate"] or 0.0)
            baseline = F.expr(spec.baseline) if spec.baseline else F.lit(mean)
            base = test.select(F.col(LABEL), baseline.cast("double").alias("prediction"))
            for key, value in ev.regression_metrics(base).items():
                if key != "rows":
                    metrics[f"baseline_{key}"] = value
        metrics["validation_" + metric] = float(scores[best])
        predictions.unpersist()
        st.add(**{k: round(v, 5) for k, v in metrics.items()})

    names = feature_names(model.transform(test.limit(0)))
    importance = _importance(_estimator_slot(model, len(prep)), names)

    def judge(candidate: PipelineModel) -> float:
        scored = candidate.transform(test)
        if classification:
            return ev.auc(scored, ev.positive_probability(), metric)
        return float(RegressionEvaluator(labelCol=LABEL, metricName=metric).evaluate(scored))

    return FitOutcome(
        name=name,
        spec=spec,
        model=model,
        candidate=described[best]["estimator"],
        params=described[best]["params"],
        metrics=metrics,
        candidates=described,
        train_dates=train_dates,
        test_dates=test_dates,
        evaluation_data=test,
        judge=judge,
        feature_columns=[c for c in (src.id_column, as_of) if c] + spec.features.all(),
        importance=importance,
        tables=tables,
        roc=roc,
        dropped_features=profile["empty"],
        label_range=(float(stats["min"] or 0.0), float(stats["max"] or 0.0)),
    )


def fit_clustering(
    spec: ModelSpec, *, name: str, snapshots: DataFrame, as_of: date, log: JobLogger
) -> FitOutcome:
    """Standardise → PCA (enough components for the variance target) → the best clusterer."""
    src = spec.source
    check_columns(
        snapshots,
        [src.id_column, src.as_of_column, *spec.features.all()],
        what=f"models.{name}.source/features",
        table=src.table,
    )
    data = snapshots.where(F.col(src.as_of_column) == F.lit(as_of)).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    profile = feature_profile(data, spec.features)
    if not profile["rows"]:
        raise TrainingDataError(f"models.{name}: no rows in {src.table} as of {as_of}")
    reduction = spec.reduction
    assert reduction is not None
    with log.stage("reduce", model=name, as_of=as_of.isoformat(), rows=profile["rows"]) as st:
        prep_model = Pipeline(stages=preparation_stages(spec, profile["usable"])).fit(data)
        prepared = prep_model.transform(data).persist(StorageLevel.MEMORY_AND_DISK)
        names = feature_names(prepared)
        full = PCA(
            k=min(len(names), reduction.max_components), inputCol=FEATURES, outputCol=REDUCED
        ).fit(prepared)
        variance = [float(v) for v in full.explainedVariance.toArray()]
        keep, total = len(variance), 0.0
        for i, v in enumerate(variance):
            total += v
            if total >= reduction.variance:
                keep = i + 1
                break
        pca = PCA(k=keep, inputCol=FEATURES, outputCol=REDUCED).fit(prepared)
        reduced = pca.transform(prepared).persist(StorageLevel.MEMORY_AND_DISK)
        st.add(components=keep, explained=round(sum(variance[:keep]), 4))

    described: list[dict[str, Any]] = []
    best_model, best_score = None, float("-inf")
    with log.stage("cluster", model=name) as st:
        for cand in spec.candidates:
            grid = ParamGridBuilder()
            est = make_estimator(cand.estimator, seed=spec.seed)
            for key, value in cand.params.items():
                est.model.set(est.model.getParam(key), value)
            for key, values in cand.grid.items():
                grid.addGrid(est.model.getParam(key), values)
            for param_map in grid.build():
                fitted = est.model.copy(param_map).fit(reduced)
                score = ev.silhouette(fitted.transform(reduced), REDUCED)
                described.append(
                    {
                        "estimator": cand.estimator,
                        "params": {**cand.params, **{p.name: v for p, v in param_map.items()}},
                        "silhouette": score,
                    }
                )
                if score > best_score:
                    best_model, best_score = fitted, score
        best = max(range(len(described)), key=lambda i: described[i]["silhouette"])
        st.add(best=described[best]["estimator"], params=described[best]["params"],
               silhouette=round(best_score, 4))  # fmt: skip
    model = PipelineModel(stages=[*prep_model.stages, pca, best_model])
    segments = model.transform(data)

    profile_rows = (
        segments.groupBy(F.col("prediction").alias("segment"))
        .agg(
            F.count("*").alias("advisors"),
            *[F.round(F.avg(F.col(c)), 3).alias(c) for c in spec.features.numeric],
        )
        .orderBy("segment")
        .collect()  # one row per segment
    )
    # The baseline: the same rows assigned at random to as many segments.
    random_assignment = reduced.withColumn(
        "prediction", F.floor(F.rand(spec.seed) * F.lit(max(len(profile_rows), 2))).cast("int")
    )
    baseline_silhouette = ev.silhouette(random_assignment, REDUCED)
    reduced.unpersist()
    prepared.unpersist()

    def judge(candidate: PipelineModel) -> float:
        return ev.silhouette(candidate.transform(data), REDUCED)

    return FitOutcome(
        name=name,
        spec=spec,
        model=model,
        candidate=described[best]["estimator"],
        params=described[best]["params"],
        metrics={
            "silhouette": best_score,
            "pca_components": float(keep),
            "pca_explained_variance": sum(variance[:keep]),
            "segments": float(len(profile_rows)),
            "rows": float(profile["rows"]),
            "baseline_silhouette": baseline_silhouette,
        },
        candidates=described,
        train_dates=[as_of],
        test_dates=[as_of],
        evaluation_data=data,
        judge=judge,
        feature_columns=[src.id_column, src.as_of_column, *spec.features.all()],
        tables={"segment_profiles": [r.asDict() for r in profile_rows]},
        variance=variance,
        dropped_features=profile["empty"],
    )
