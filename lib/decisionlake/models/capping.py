"""Outlier capping as a ``pyspark.ml`` Estimator, so cross-validation fits it per fold.

Bounds fitted outside the pipeline (on all training rows) would let each fold's validation
rows shape the caps its model is trained with; here ``fit`` sees only the rows it is given.
Persistable with the pipeline (``DefaultParamsWritable``), so a saved model caps as trained.
"""

from __future__ import annotations

import math
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCols, HasOutputCols, HasRelativeError
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class _CapParams(HasInputCols, HasOutputCols, HasRelativeError):  # noqa: N818 - not an error
    lower = Param(Params._dummy(), "lower", "quantile of the lower cap", TypeConverters.toFloat)
    upper = Param(Params._dummy(), "upper", "quantile of the upper cap", TypeConverters.toFloat)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(lower=0.01, upper=0.99, relativeError=0.0001)


class QuantileCapper(Estimator, _CapParams, DefaultParamsReadable, DefaultParamsWritable):
    """Clip each input column to its ``lower``..``upper`` quantiles of the fitted rows."""

    @keyword_only
    def __init__(
        self,
        *,
        inputCols: list[str] | None = None,  # noqa: N803 - MLlib's parameter names
        outputCols: list[str] | None = None,  # noqa: N803
        lower: float = 0.01,
        upper: float = 0.99,
        relativeError: float = 0.0001,  # noqa: N803
    ) -> None:
        super().__init__()
        self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> QuantileCapperModel:
        columns = self.getInputCols()
        quantiles = dataset.approxQuantile(
            columns,
            [self.getOrDefault(self.lower), self.getOrDefault(self.upper)],
            self.getRelativeError(),
        )  # one aggregate, two numbers per column
        bounds = [
            [float(q[0]), float(q[1])] if len(q) == 2 else [-math.inf, math.inf] for q in quantiles
        ]
        model = QuantileCapperModel(
            inputCols=columns, outputCols=self.getOutputCols(), bounds=bounds
        )
        return self._copyValues(model)


class QuantileCapperModel(Model, _CapParams, DefaultParamsReadable, DefaultParamsWritable):
    """The fitted caps: ``bounds[i]`` = [low, high] of ``inputCols[i]``."""

    bounds = Param(
        Params._dummy(), "bounds", "fitted [low, high] per input column",
        TypeConverters.toListListFloat,
    )  # fmt: skip

    @keyword_only
    def __init__(
        self,
        *,
        inputCols: list[str] | None = None,  # noqa: N803
        outputCols: list[str] | None = None,  # noqa: N803
        bounds: list[list[float]] | None = None,
    ) -> None:
        super().__init__()
        self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        capped = {}
        for source, target, (low, high) in zip(
            self.getInputCols(), self.getOutputCols(), self.getOrDefault(self.bounds), strict=True
        ):
            value = F.col(source).cast("double")
            if math.isfinite(low) and math.isfinite(high):
                value = F.least(F.greatest(value, F.lit(low)), F.lit(high))
            capped[target] = value
        return dataset.withColumns(capped)
