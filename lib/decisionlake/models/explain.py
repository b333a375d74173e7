"""Per-row reasons for every model: which features moved this advisor's score, and which way.

- Linear models (logistic regression, linear SVM, linear regression): coefficient times the
  standardised value.
- Tree ensembles (random forest, gradient-boosted trees, single trees): path contributions
  (Saabas): following the row's path down each tree, every split credits its feature with the
  change of the node value; summed over the trees with the ensemble's weights, bias plus
  contributions equal the model's output (probability for a forest, margin for boosting).

The tree structure is read once on the driver (it is model-sized, not data-sized); the
contributions are computed on the executors by one Arrow (pandas) UDF over the feature vectors,
vectorised per tree level. Picking the top features and wording them ("downloads_30d high")
are Spark built-ins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.models.estimators import FEATURES
from decisionlake.models.training_sets import RAW_FEATURES, feature_names

CONTRIBUTIONS = "_contributions"
REASON_TYPE = T.ArrayType(
    T.StructType(
        [
            T.StructField("feature", T.StringType()),
            T.StructField("contribution", T.DoubleType()),
            T.StructField("reason", T.StringType()),
        ]
    )
)


@dataclass(frozen=True)
class FlatTree:
    """One decision tree as arrays (node 0 is the root; feature -1 marks a leaf)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    left_categories: dict[int, np.ndarray]
    depth: int


@dataclass(frozen=True)
class Explainer:
    """How to compute a row's per-feature contributions (an array column) and name them."""

    names: list[str]
    binary: list[bool]
    contributions: Column


def _node_value(node: Any, *, class_probability: bool) -> float:
    if class_probability:  # a forest's classifier trees: P(class 1) of the node's rows
        stats = list(node.impurityStats().stats())
        total = sum(stats)
        return float(stats[1] / total) if total and len(stats) > 1 else 0.0
    return float(node.prediction())


def flatten_tree(root: Any, *, class_probability: bool) -> FlatTree:
    """A JVM tree (``rootNode()``) as arrays; one pass over its nodes."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    categories: dict[int, np.ndarray] = {}
    depth_of: list[int] = []

    def add(node: Any, depth: int) -> int:
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(_node_value(node, class_probability=class_probability))
        depth_of.append(depth)
        return len(value) - 1

    stack = [(root, add(root, 0))]
    while stack:
        node, i = stack.pop()
        if node.getClass().getSimpleName() != "InternalNode":
            continue
        split = node.split()
        feature[i] = int(split.featureIndex())
        if split.getClass().getSimpleName() == "ContinuousSplit":
            threshold[i] = float(split.threshold())
        else:
            categories[i] = np.array(list(split.leftCategories()), dtype=float)
        for child, slots in ((node.leftChild(), left), (node.rightChild(), right)):
            j = add(child, depth_of[i] + 1)
            slots[i] = j
            stack.append((child, j))
    return FlatTree(
        np.array(feature, dtype=np.int64),
        np.array(threshold, dtype=float),
        np.array(left, dtype=np.int64),
        np.array(right, dtype=np.int64),
        np.array(value, dtype=float),
        categories,
        max(depth_of),
    )


def tree_ensemble(stage: Any) -> tuple[list[FlatTree], list[float]] | None:
    """(trees, weights) of an MLlib tree model, or None for any other stage."""
    from pyspark.ml.classification import (
        DecisionTreeClassificationModel,
        GBTClassificationModel,
        RandomForestClassificationModel,
    )
    from pyspark.ml.regression import (
        DecisionTreeRegressionModel,
        GBTRegressionModel,
        RandomForestRegressionModel,
    )

    if isinstance(stage, RandomForestClassificationModel | RandomForestRegressionModel):
        probability = isinstance(stage, RandomForestClassificationModel)
        trees = [flatten_tree(t._java_obj.rootNode(), class_probability=probability)
                 for t in stage.trees]  # fmt: skip
        return trees, [1.0 / len(trees)] * len(trees)  # a forest averages its trees
    if isinstance(stage, GBTClassificationModel | GBTRegressionModel):
        trees = [flatten_tree(t._java_obj.rootNode(), class_probability=False)
                 for t in stage.trees]  # fmt: skip
        return trees, [float(w) for w in stage.treeWeights]  # boosting sums weighted trees
    if isinstance(stage, DecisionTreeClassificationModel | DecisionTreeRegressionModel):
        probability = isinstance(stage, DecisionTreeClassificationModel)
        return [flatten_tree(stage._java_obj.rootNode(), class_probability=probability)], [1.0]
    return None


def path_contributions(x: np.ndarray, trees: list[FlatTree], weights: list[float]) -> np.ndarray:
    """Saabas contributions (rows x features) of a batch of feature rows ``x``."""
    out = np.zeros_like(x, dtype=float)
    rows_all = np.arange(len(x))
    for tree, weight in zip(trees, weights, strict=True):
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(tree.depth):
            split_feature = tree.feature[node]
            active = split_feature >= 0
            if not active.any():
                break
            rows, at, f = rows_all[active], node[active], split_feature[active]
            values = x[rows, f]
            go_left = values <= tree.threshold[at]
            for categorical_node, left_set in tree.left_categories.items():
                here = at == categorical_node
                if here.any():
                    go_left[here] = np.isin(values[here], left_set)
            child = np.where(go_left, tree.left[at], tree.right[at])
            np.add.at(out, (rows, f), weight * (tree.value[child] - tree.value[at]))
            node[rows] = child
    return out


def _contributions_udf(trees: list[FlatTree], weights: list[float]) -> Any:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(T.ArrayType(T.DoubleType()))  # type: ignore[call-overload]
    def contributions(vectors: pd.Series) -> pd.Series:
        if vectors.empty:
            return pd.Series([], dtype=object)
        x = np.stack([np.asarray(v, dtype=float) for v in vectors.to_numpy()])
        return pd.Series(list(path_contributions(x, trees, weights)))

    return contributions


def feature_kinds(prepared: DataFrame) -> list[bool]:
    """Per slot of the assembled vector: True for a one-hot (binary) slot."""
    meta = prepared.schema[RAW_FEATURES].metadata.get("ml_attr", {})
    binary: dict[int, bool] = {}
    for kind, group in meta.get("attrs", {}).items():
        for attr in group:
            binary[int(attr["idx"])] = kind == "binary"
    size = int(meta.get("num_attrs", len(binary)))
    return [binary.get(i, False) for i in range(size)]


def _linear(values: Column, coefficients: Any) -> Column:
    weights = F.array(*[F.lit(float(c)) for c in coefficients])
    return F.transform(values, lambda v, i: v * weights[i])


def explainer(model: PipelineModel, prepared: DataFrame) -> Explainer | None:
    """The model's per-row contributions on ``features``; None when it has no such stage."""
    names = feature_names(prepared)
    binary = feature_kinds(prepared)
    values = vector_to_array(F.col(FEATURES))
    for stage in model.stages:
        if not stage.hasParam("featuresCol") or stage.getOrDefault("featuresCol") != FEATURES:
            continue
        if hasattr(stage, "coefficients"):
            return Explainer(names, binary, _linear(values, stage.coefficients.toArray()))
        ensemble = tree_ensemble(stage)
        if ensemble is not None:
            return Explainer(names, binary, _contributions_udf(*ensemble)(values))
    return None


def with_contributions(df: DataFrame, found: Explainer | None) -> DataFrame:
    """The per-feature contributions as a column (computed once per row, then ranked)."""
    if found is None:
        return df
    return df.withColumn(CONTRIBUTIONS, found.contributions)


def top_reasons(found: Explainer | None, *, top: int) -> Column:
    """The ``top`` features by |contribution|, each with a readable reason, largest first.

    Reads the column :func:`with_contributions` adds.
    """
    if found is None or not found.names or top <= 0:
        return F.lit(None).cast(REASON_TYPE)
    values = vector_to_array(F.col(FEATURES))
    contributions = F.col(CONTRIBUTIONS)
    names = F.array(*[F.lit(n) for n in found.names])
    binary = F.array(*[F.lit(b) for b in found.binary])

    def wording(i: Column) -> Column:
        # Standardised values: above 0 is above the training average ("high"); a one-hot
        # slot above 0 means the advisor has that category.
        return F.when(binary[i], F.when(values[i] > 0, names[i]).otherwise(
            F.concat(F.lit("not "), names[i]))
        ).otherwise(F.concat(names[i], F.when(values[i] > 0, F.lit(" high")).otherwise(
            F.lit(" low"))))  # fmt: skip

    pairs = F.transform(
        F.sequence(F.lit(0), F.lit(len(found.names) - 1)),
        lambda i: F.struct(
            names[i].alias("feature"),
            F.round(contributions[i], 5).alias("contribution"),
            wording(i).alias("reason"),
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
