"""Champion/challenger validation: a new version is promoted only when every named check passes.

After the challenger validation of public MLOps templates: each check has a name, a figure, the
bound it was held to and a verdict; all are recorded as model-version tags, so anyone can see
why a version is (or is not) the champion. ``promotion.mode: shadow`` records every check but
lets only the champion comparison decide, for introducing a new check safely.

Checks (those that do not apply to a task are left out):

- ``beats_baseline``: the test-snapshot metric beats the spec's baseline on the same rows by
  ``promotion.baseline_margin``;
- ``reaches_floor``: the metric reaches ``promotion.min_metric`` (when set);
- ``beats_champion``: it beats the current champion on the same test snapshot by ``margin``;
- ``scores_production``: today's production snapshot is scored: rows, no null or NaN score,
  scores in range (probabilities in [0, 1], regression within the label's plausible span,
  segments in 0..k-1);
- ``calibration``: expected calibration error on the test snapshot within
  ``promotion.max_calibration_error`` (classifiers);
- ``artifacts``: the model, its signature, the spec, inputs and plots are logged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.models.spec import LOWER_IS_BETTER, ModelSpec

CHAMPION = "champion"
CHALLENGER = "challenger"
REJECTED = "rejected"
ENFORCE = "enforce"
SHADOW = "shadow"
# Failing only this check makes a sound model a challenger; failing any other rejects it.
CHAMPION_CHECK = "beats_champion"
CHECKS_PASSED_TAG = "checks_passed"
MODE_TAG = "promotion_mode"
REQUIRED_ARTIFACTS = ("model", "spec.json", "inputs.json", "candidates.json")


@dataclass(frozen=True)
class Check:
    """One named check with its figure and bound."""

    name: str
    passed: bool
    value: float | None
    bound: float | None
    detail: str
    champion_value: float | None = None
    """``beats_champion``: the champion's own figure on the same snapshot."""

    def tag(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "passed": self.passed,
            "value": None if self.value is None else round(self.value, 5),
            "bound": None if self.bound is None else round(self.bound, 5),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Verdict:
    """The checks and what they make of the version."""

    checks: list[Check]
    mode: str
    role: str
    promoted: bool
    reason: str

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    @property
    def all_passed(self) -> bool:
        return not self.failed


def better(new: float, old: float, *, metric: str, margin: float) -> bool:
    """Whether ``new`` beats ``old`` by at least ``margin`` in the metric's direction."""
    if metric in LOWER_IS_BETTER:
        return new <= old - margin
    return new >= old + margin


def beats_baseline(value: float, baseline: float, *, metric: str, margin: float) -> Check:
    bound = baseline - margin if metric in LOWER_IS_BETTER else baseline + margin
    passed = better(value, baseline, metric=metric, margin=margin)
    relation = "<=" if metric in LOWER_IS_BETTER else ">="
    return Check(
        "beats_baseline",
        passed,
        value,
        bound,
        f"{metric} {value:.4f} vs baseline {baseline:.4f} (needs {relation} {bound:.4f})",
    )


def reaches_floor(value: float, *, metric: str, floor: float) -> Check:
    passed = value <= floor if metric in LOWER_IS_BETTER else value >= floor
    return Check("reaches_floor", passed, value, floor, f"{metric} {value:.4f}, floor {floor}")


def beats_champion(
    value: float, champion: float | None, *, version: str | None, metric: str, margin: float
) -> Check:
    if version is None:
        return Check(CHAMPION_CHECK, True, value, None, "no champion yet")
    if champion is None:
        return Check(
            CHAMPION_CHECK, True, value, None,
            f"champion v{version} cannot score the test snapshot",
        )  # fmt: skip
    bound = champion - margin if metric in LOWER_IS_BETTER else champion + margin
    passed = better(value, champion, metric=metric, margin=margin)
    return Check(
        CHAMPION_CHECK,
        passed,
        value,
        bound,
        f"{metric} {value:.4f} {'beats' if passed else 'does not beat'} champion v{version} "
        f"({champion:.4f}) by the margin {margin} on the same test snapshot",
        champion,
    )


def production_stats(scored: DataFrame, *, score_column: str) -> dict[str, Any]:
    """One aggregate over the scored production snapshot (rows, nulls, NaN, min, max)."""
    s = F.col(score_column).cast("double")
    row = scored.agg(
        F.count("*").alias("rows"),
        F.sum(F.when(s.isNull(), 1).otherwise(0)).alias("nulls"),
        F.sum(F.when(F.isnan(s), 1).otherwise(0)).alias("nans"),
        F.min(F.when(~F.isnan(s), s)).alias("min"),
        F.max(F.when(~F.isnan(s), s)).alias("max"),
    ).first()  # one row
    return {k: row[k] for k in ("rows", "nulls", "nans", "min", "max")}


def score_range(spec: ModelSpec, *, label_min: float, label_max: float, segments: int) -> tuple:
    """The (low, high) a sane score stays within, by task."""
    if spec.task == "classification":
        return 0.0, 1.0
    if spec.task == "clustering":
        return 0.0, float(max(segments - 1, 0))
    # Regression: anything beyond ten times the label's observed span around it is broken.
    span = max(label_max - label_min, abs(label_max), abs(label_min), 1.0)
    return label_min - 10 * span, label_max + 10 * span


def scores_production(stats: dict[str, Any], *, low: float, high: float, as_of: str) -> Check:
    rows, nulls, nans = stats["rows"] or 0, stats["nulls"] or 0, stats["nans"] or 0
    lo, hi = stats["min"], stats["max"]
    problems = []
    if not rows:
        problems.append("no rows")
    if nulls or nans:
        problems.append(f"{nulls} null and {nans} NaN scores")
    if rows and lo is not None and (lo < low or hi > high):
        problems.append(f"scores {lo:.4g}..{hi:.4g} outside {low:.4g}..{high:.4g}")
    detail = (
        f"snapshot {as_of}: {rows} rows, scores "
        + (f"{lo:.4g}..{hi:.4g}" if lo is not None else "none")
        + (f"; {'; '.join(problems)}" if problems else "")
    )
    return Check("scores_production", not problems, float(rows), None, detail)


def calibration(ece: float, *, bound: float) -> Check:
    passed = not math.isnan(ece) and ece <= bound
    return Check("calibration", passed, ece, bound, f"ECE {ece:.4f} (bound {bound})")


def artifacts(logged: Sequence[str], *, has_signature: bool) -> Check:
    missing = [a for a in REQUIRED_ARTIFACTS if a not in logged]
    if not has_signature:
        missing.append("signature")
    if not any(a.startswith("plots") for a in logged):
        missing.append("plots")
    detail = "model, signature, spec, inputs, plots logged"
    if missing:
        detail = f"missing {', '.join(missing)}"
    return Check("artifacts", not missing, float(len(logged)), None, detail)


def decide(checks: list[Check], *, mode: str) -> Verdict:
    """Champion only when every check passes (enforce) or the champion check does (shadow)."""
    failed = [c for c in checks if not c.passed]
    champion_check = next((c for c in checks if c.name == CHAMPION_CHECK), None)
    beats = champion_check is None or champion_check.passed
    blocking = failed if mode == ENFORCE else [c for c in failed if c.name == CHAMPION_CHECK]
    if not blocking:
        role, promoted = CHAMPION, True
    elif all(c.name == CHAMPION_CHECK for c in failed) or (mode == SHADOW and not beats):
        role, promoted = CHALLENGER, False
    else:
        role, promoted = REJECTED, False
    names = ", ".join(c.name for c in failed)
    if promoted:
        reason = f"shadow mode: {names} failed, not enforced" if failed else "every check passed"
    elif role == CHALLENGER:
        reason = f"sound, but {champion_check.detail if champion_check else names}"
    else:
        reason = "failed " + "; ".join(f"{c.name} ({c.detail})" for c in failed)
    return Verdict(checks, mode, role, promoted, reason)
