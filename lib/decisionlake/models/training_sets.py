"""Point-in-time training sets and the cleansing stages every model pipeline starts with.

Features come from snapshot rows (one per id per as-of date) exactly as they were stored, so
they only hold what was known on that date; labels come only from events after it, inside the
label window, and only for as-of dates whose window has closed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from decisionlake.models.capping import QuantileCapper
from decisionlake.models.estimators import FEATURES, LABEL, WEIGHT
from decisionlake.models.spec import FeatureSpec, LabelSpec, ModelSpec, SourceSpec

RAW_FEATURES = "features_raw"


def label_window(as_of: Column, event_date: Column, *, horizon_days: int) -> Column:
    """Events strictly after the as-of date and at most ``horizon_days`` later."""
    return (event_date > as_of) & (event_date <= F.date_add(as_of, horizon_days))


def with_labels(
    snapshots: DataFrame,
    events: DataFrame,
    *,
    source: SourceSpec,
    label: LabelSpec,
    label_through: date,
) -> DataFrame:
    """Snapshots whose label window closed by ``label_through``, with a ``label`` column."""
    as_of = F.col(source.as_of_column)
    mature = snapshots.where(F.date_add(as_of, label.horizon_days) <= F.lit(label_through))
    matching = events.where(label.where) if label.where else events
    value = F.expr(label.value) if label.value else F.lit(1.0)
    picked = matching.select(
        F.col(label.id_column).alias("_id"),
        F.to_date(F.col(label.time_column)).alias("_t"),
        value.cast("double").alias("_v"),
    ).where(F.col("_t") <= F.lit(label_through))
    keys = mature.select(F.col(source.id_column).alias("_id"), as_of.alias("_as_of")).distinct()
    outcomes = (
        keys.join(picked, "_id")
        .where(label_window(F.col("_as_of"), F.col("_t"), horizon_days=label.horizon_days))
        .groupBy("_id", "_as_of")
        .agg(F.count("*").alias("_n"), F.sum("_v").alias("_sum"))
    )
    joined = mature.join(
        outcomes,
        (F.col(source.id_column) == F.col("_id")) & (as_of == F.col("_as_of")),
        "left",
    )
    target = (
        F.coalesce(F.col("_sum"), F.lit(0.0))
        if label.value
        else (F.coalesce(F.col("_n"), F.lit(0)) > 0).cast("double")
    )
    return joined.withColumn(LABEL, target).drop("_id", "_as_of", "_n", "_sum")


IS_TEST = "_is_test"
TIME_KEY = "_time_key"


def time_key(column: Column) -> Column:
    """A time column as a number (epoch seconds for dates and timestamps, else as it is)."""
    return F.coalesce(
        F.unix_timestamp(column.cast("timestamp")).cast("double"), column.cast("double")
    )


FOLD = "fold"
_HASH_BUCKETS = 1_000_003


def positive_value(positive: Any) -> str:
    """The label column's value that means 1, as Spark casts it to a string."""
    if isinstance(positive, bool):
        return "true" if positive else "false"
    return str(positive)


def with_column_label(df: DataFrame, *, label: LabelSpec) -> DataFrame:
    """``label`` from a column of the table itself: 1.0 where it equals ``positive``, or the
    column's number (NULL stays NULL: such rows cannot be learnt from and are counted)."""
    column = F.col(label.column)
    if label.positive is not None:
        value = F.when(column.isNull(), F.lit(None)).otherwise(
            (column.cast("string") == F.lit(positive_value(label.positive))).cast("double")
        )
    else:
        value = column.cast("double")
    return df.withColumn(LABEL, value)


def _unit_hash(*columns: Column, seed: int) -> Column:
    """A number in [0, 1) from a keyed hash: the same row gets the same value in every run."""
    return F.pmod(F.xxhash64(*columns, F.lit(seed)), F.lit(_HASH_BUCKETS)) / _HASH_BUCKETS


def with_row_split(
    df: DataFrame,
    *,
    id_column: str,
    kind: str,
    test_fraction: float,
    seed: int,
    folds: int,
    time_column: str = "",
    time_threshold: Any = None,
) -> DataFrame:
    """``_is_test`` and ``fold`` for a table without as-of dates.

    random: a keyed hash of the id below ``test_fraction``; stratified: the same hash ranked
    within each label value, so test and every fold keep the label's proportions; time: rows
    at or after ``time_threshold`` (the latest ``test_fraction``) are the test rows.
    """
    u = _unit_hash(F.col(id_column).cast("string"), seed=seed)
    fold_hash = _unit_hash(F.col(id_column).cast("string"), seed=seed + 1)
    if kind == "stratified":
        by_label = Window.partitionBy(LABEL).orderBy(u, F.col(id_column))
        return df.withColumns(
            {
                IS_TEST: F.percent_rank().over(by_label) < F.lit(test_fraction),
                FOLD: (F.row_number().over(by_label) % F.lit(folds)).cast("int"),
            }
        )
    if kind == "time":
        is_test = F.col(time_column) >= F.lit(time_threshold)
    else:
        is_test = u < F.lit(test_fraction)
    return df.withColumns({IS_TEST: is_test, FOLD: F.floor(fold_hash * F.lit(folds)).cast("int")})


def with_class_weights(df: DataFrame, *, positive_rate: float) -> DataFrame:
    """``weight`` so both classes carry half the total weight (class imbalance)."""
    rate = min(max(positive_rate, 1e-6), 1 - 1e-6)
    return df.withColumn(WEIGHT, F.when(F.col(LABEL) > 0, 0.5 / rate).otherwise(0.5 / (1 - rate)))


def time_split(
    as_of_dates: list[date], *, test_dates: int, embargo: bool, horizon_days: int
) -> tuple[list[date], list[date]]:
    """(train dates, test dates): the latest ``test_dates`` are the test snapshot.

    With ``embargo`` the training dates stop where their label window would reach into the
    test period, so no training label was observed after the first test as-of date.
    """
    ordered = sorted(set(as_of_dates))
    if len(ordered) <= test_dates:
        raise ValueError(
            f"need more than {test_dates} mature as-of date(s) to split by time, have "
            f"{len(ordered)} ({', '.join(map(str, ordered)) or 'none'})"
        )
    test = ordered[-test_dates:]
    train = ordered[:-test_dates]
    if embargo:
        cutoff = test[0] - timedelta(days=horizon_days)
        train = [d for d in train if d <= cutoff]
        if not train:
            raise ValueError(
                f"no training as-of date ends its {horizon_days}-day label window by {test[0]}; "
                "generate more history or set selection.embargo: false"
            )
    return train, test


def with_fold(df: DataFrame, *, as_of_column: str, dates: list[date], folds: int) -> DataFrame:
    """``fold``: whole as-of dates per fold, so no snapshot is split across folds."""
    mapping = F.create_map(
        *[x for i, d in enumerate(sorted(dates)) for x in (F.lit(d), F.lit(i % folds))]
    )
    return df.withColumn("fold", mapping[F.col(as_of_column)].cast("int"))


def feature_profile(df: DataFrame, features: FeatureSpec) -> dict[str, Any]:
    """One pass over training data: rows, and the numeric columns without any value."""
    aggs: list[Column] = [F.count("*").alias("_rows")]
    for c in features.numeric:
        x = F.col(c).cast("double")
        aggs.append(F.count(F.when(~F.isnan(x), x)).alias(f"{c}__n"))
    row = df.agg(*aggs).first()  # one row
    empty = [c for c in features.numeric if not row[f"{c}__n"]]
    usable = [c for c in features.numeric if c not in empty]
    return {"rows": row["_rows"], "usable": usable, "empty": empty}


def _q(name: str) -> str:
    return f"`{name}`"


def preparation_stages(spec: ModelSpec, usable: list[str]) -> list[Any]:
    """Cast, impute (median), cap outliers, index categoricals (unseen kept), assemble, scale.

    Every statistic (medians, caps, index, scale) is fitted by an Estimator of the pipeline,
    so each cross-validation fold fits its own. Only numeric columns with values in the
    training data (``usable``) are used.
    """
    numeric = [c for c in spec.features.numeric if c in usable]
    categorical = spec.features.categorical
    stages: list[Any] = []
    if numeric:
        casts = ", ".join(f"CAST({_q(c)} AS DOUBLE) AS {_q(c + '__num')}" for c in numeric)
        stages.append(SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__"))
        stages.append(
            Imputer(
                inputCols=[f"{c}__num" for c in numeric],
                outputCols=[f"{c}__imp" for c in numeric],
                strategy="median",
            )
        )
        caps = spec.features.cap_quantiles
        imputed = [f"{c}__imp" for c in numeric]
        if caps:
            stages.append(
                QuantileCapper(
                    inputCols=imputed,
                    outputCols=[f"{c}__cap" for c in numeric],
                    lower=caps[0],
                    upper=caps[1],
                )
            )
        else:
            renames = ", ".join(f"{_q(c + '__imp')} AS {_q(c + '__cap')}" for c in numeric)
            stages.append(SQLTransformer(statement=f"SELECT *, {renames} FROM __THIS__"))
    if categorical:
        stages.append(
            StringIndexer(
                inputCols=categorical,
                outputCols=[f"{c}__idx" for c in categorical],
                handleInvalid="keep",
                stringOrderType="alphabetAsc",
            )
        )
        stages.append(
            OneHotEncoder(
                inputCols=[f"{c}__idx" for c in categorical],
                outputCols=[f"{c}__vec" for c in categorical],
                handleInvalid="keep",
            )
        )
    stages.append(
        VectorAssembler(
            inputCols=[
                *[f"{c}__cap" for c in numeric],
                *[f"{c}__vec" for c in categorical],
                *spec.features.vector,
            ],
            outputCol=RAW_FEATURES,
            handleInvalid="keep",
        )
    )
    stages.append(
        StandardScaler(inputCol=RAW_FEATURES, outputCol=FEATURES, withMean=True, withStd=True)
    )
    return stages


def feature_names(prepared: DataFrame) -> list[str]:
    """Names of the assembled vector's slots (from its ML attribute metadata)."""
    meta = prepared.schema[RAW_FEATURES].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in meta.get("attrs", {}).values():
        for attr in group:
            slots[int(attr["idx"])] = str(attr["name"]).replace("__cap", "").replace("__vec", "")
    return [slots.get(i, f"f{i}") for i in range(int(meta.get("num_attrs", len(slots))))]
