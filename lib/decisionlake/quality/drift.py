"""Drift between a reference and a current sample, computed in Spark (bins, not pandas).

For each numeric column: the reference's quantiles give ``bins`` edges; both samples are
counted per bin in one aggregate each; from the two histograms come the Population Stability
Index (bands: < 0.1 stable, 0.1-0.25 moderate, ≥ 0.25 significant), the Kolmogorov-Smirnov
statistic (largest gap between the binned CDFs) and the Jensen-Shannon divergence (base 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
_EPS = 1e-6


@dataclass(frozen=True)
class Drift:
    """Drift of one column."""

    column: str
    psi: float
    ks: float
    js: float
    reference_rows: int
    current_rows: int

    @property
    def band(self) -> str:
        if self.psi >= PSI_SIGNIFICANT:
            return "significant"
        return "moderate" if self.psi >= PSI_MODERATE else "stable"


def _edges(reference: DataFrame, columns: list[str], bins: int) -> dict[str, list[float]]:
    probs = [i / bins for i in range(1, bins)]
    row = reference.agg(
        *[F.percentile_approx(F.col(c).cast("double"), probs, 10_000).alias(c) for c in columns]
    ).first()  # one row
    out = {}
    for c in columns:
        # Ties collapse quantiles (counts, shares): keep distinct edges only.
        out[c] = sorted(set(float(v) for v in (row[c] or [])))
    return out


def _bin(value: Column, edges: list[float]) -> Column:
    """0..len(edges): the number of edges at or below the value; NULLs get their own bin -1."""
    index = sum((F.when(value >= F.lit(e), 1).otherwise(0) for e in edges), F.lit(0))
    return F.when(value.isNull(), F.lit(-1)).otherwise(index)


def _histograms(df: DataFrame, edges: dict[str, list[float]]) -> dict[str, dict[int, int]]:
    aggs = []
    for c, e in edges.items():
        b = _bin(F.col(c).cast("double"), e)
        aggs += [F.sum(F.when(b == i, 1).otherwise(0)).alias(f"{c}__{i + 1}")
                 for i in range(-1, len(e) + 1)]  # fmt: skip
    row = df.agg(*aggs).first()  # one row: (bins + 2) counts per column
    return {
        c: {i: int(row[f"{c}__{i + 1}"] or 0) for i in range(-1, len(e) + 1)}
        for c, e in edges.items()
    }


def _compare(column: str, ref: dict[int, int], cur: dict[int, int]) -> Drift:
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    keys = sorted(set(ref) | set(cur))
    p = [max(ref.get(k, 0) / max(n_ref, 1), _EPS) for k in keys]
    q = [max(cur.get(k, 0) / max(n_cur, 1), _EPS) for k in keys]
    psi = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
    js = 0.5 * sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m, strict=True)) + 0.5 * sum(
        qi * math.log2(qi / mi) for qi, mi in zip(q, m, strict=True)
    )
    ks, cp, cq = 0.0, 0.0, 0.0
    for k in keys:
        if k < 0:
            continue  # NULLs are not on the value axis
        cp += ref.get(k, 0) / max(n_ref, 1)
        cq += cur.get(k, 0) / max(n_cur, 1)
        ks = max(ks, abs(cp - cq))
    return Drift(column, round(psi, 6), round(ks, 6), round(js, 6), n_ref, n_cur)


def drift(
    reference: DataFrame, current: DataFrame, columns: list[str], *, bins: int = 10
) -> list[Drift]:
    """PSI, KS and JS per column (three aggregates in total, whatever the number of columns)."""
    if not columns:
        return []
    edges = _edges(reference, columns, bins)
    ref = _histograms(reference, edges)
    cur = _histograms(current, edges)
    return [_compare(c, ref[c], cur[c]) for c in columns]
