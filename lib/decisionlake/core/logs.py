"""Structured (JSON lines) logging with per-stage timings and row counts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO


@dataclass
class StageRecord:
    """Figures a stage reports; filled in by the code running inside the stage."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, **figures: Any) -> None:
        """Attach figures (row counts, paths) to the stage's closing log line."""
        self.figures.update(figures)


class JobLogger:
    """Writes one JSON object per line to a stream (stderr by default)."""

    def __init__(self, job: str, run_id: str, stream: TextIO | None = None) -> None:
        self.job = job
        self.run_id = run_id
        self._stream = stream
        self.stages: list[dict[str, Any]] = []

    def event(self, event: str, level: str = "INFO", **fields: Any) -> dict[str, Any]:
        """Emit one log record and return it."""
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "job": self.job,
            "run_id": self.run_id,
            "event": event,
            **fields,
        }
        stream = self._stream or sys.stderr
        stream.write(json.dumps(record, default=str) + "\n")
        stream.flush()
        return record

    @contextmanager
    def stage(self, name: str, **fields: Any) -> Iterator[StageRecord]:
        """Time a stage; figures added to the yielded record go on its closing line."""
        record = StageRecord(name)
        self.event("stage_start", stage=name, **fields)
        started = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            self.event(
                "stage_failed",
                level="ERROR",
                stage=name,
                duration_s=round(time.perf_counter() - started, 3),
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        duration = round(time.perf_counter() - started, 3)
        done = self.event("stage_end", stage=name, duration_s=duration, **record.figures)
        self.stages.append(done)
