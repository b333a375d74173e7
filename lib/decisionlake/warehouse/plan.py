"""What a load must do and the checks around it (shared by the backends)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from decisionlake.warehouse.ddl import Column
from decisionlake.warehouse.reconcile import Totals


class ReconciliationError(RuntimeError):
    """The loaded slice differs from the staged data; the transaction was rolled back."""


class ConstraintViolationError(ValueError):
    """Rows the target would refuse, found before any load (with their keys)."""


@dataclass(frozen=True)
class LoadPlan:
    """One load: target, key, columns, evolution, and the totals the slice must end with."""

    target: str
    keys: list[str]
    columns: list[Column]
    slice_column: str
    slices: list[str]
    value_column: str
    expected: Totals
    run_id: str
    alters: list[str] = field(default_factory=list)
    distkey: str = ""
    sortkey: list[str] = field(default_factory=list)


def fault_point(name: str) -> None:
    """Test hook: ``DECISIONLAKE_FAULT=<name>`` kills the process here, as a lost node would."""
    if os.environ.get("DECISIONLAKE_FAULT") == name:
        sys.stderr.write(f"fault injected at {name}: process killed\n")
        sys.stderr.flush()
        os._exit(137)
