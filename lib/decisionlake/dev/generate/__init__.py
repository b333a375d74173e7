"""Seeded, scalable synthetic data for the landing zone (``decisionlake generate``).

Visitors are spread over Spark tasks; each task simulates its visitors and writes its own files
(gzip JSON lines for web events, JSON lines for notes, outcomes and the CRM dimension) straight
to the landing zone, then returns one manifest row per file. Only the manifest (bounded by the
number of files, not the data) reaches the driver.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from decisionlake.config import AppConfig, StorageConfig
from decisionlake.dev.generate.simulate import GenSpec, VisitorOutput, simulate_visitor
from decisionlake.io.storage import delete_prefix, write_bytes

VISITORS_PER_TASK = 2_000
VISITORS_PER_FILE = 250
MANIFEST_SCHEMA = "kind string, date string, path string, rows long, stats string"


def build_spec(
    cfg: AppConfig, *, end_date: date, days: int | None, advisors: int | None, seed: int | None
) -> GenSpec:
    """The generation spec from config defaults and explicit choices."""
    g = cfg.generator
    n_days = days or g.days
    n_advisors = advisors or g.advisors
    if n_days < 1 or n_advisors < 1:
        raise ValueError("generate needs --days >= 1 and --advisors >= 1")
    return GenSpec(
        seed=g.seed if seed is None else seed,
        start_date=end_date - timedelta(days=n_days - 1),
        days=n_days,
        advisors=n_advisors,
        anonymous_visitors=int(n_advisors * g.anonymous_visitor_ratio),
        bots=g.bots,
        duplicate_rate=g.duplicate_rate,
        late_rate=g.late_rate,
        malformed_rate=g.malformed_rate,
        notes_per_advisor_per_day=g.notes_per_advisor_per_day,
    )


def _json_line(row: dict[str, Any]) -> str:
    clean = {k: v for k, v in row.items() if not k.startswith("_")}
    line = json.dumps(clean, ensure_ascii=False)
    return (line[: len(line) // 2] if row.get("_damaged") else line) + "\n"


def _write_chunk(
    landing: str, storage: StorageConfig, part: str, outputs: list[VisitorOutput]
) -> list[dict[str, Any]]:
    manifest: list[dict[str, Any]] = []
    lines: dict[date, list[bytes]] = {}
    stats: dict[date, dict[str, int]] = {}
    for out in outputs:
        for day, day_lines in out.lines.items():
            lines.setdefault(day, []).extend(day_lines)
            merged = stats.setdefault(day, {})
            for key, value in out.stats[day].items():
                merged[key] = merged.get(key, 0) + value
    for day in sorted(lines):
        path = f"{landing}/clickstream/date={day.isoformat()}/{part}.json.gz"
        write_bytes(path, gzip.compress(b"\n".join(lines[day]) + b"\n", 6), storage)
        manifest.append(
            {
                "kind": "clickstream",
                "date": day.isoformat(),
                "path": path,
                "rows": len(lines[day]),
                "stats": json.dumps(stats[day], sort_keys=True),
            }
        )
    for kind, attr in (("crm_notes", "notes"), ("outcomes", "outcomes")):
        by_day: dict[date, list[dict[str, Any]]] = {}
        for out in outputs:
            for day, rows in getattr(out, attr).items():
                by_day.setdefault(day, []).extend(rows)
        for day in sorted(by_day):
            path = f"{landing}/{kind}/date={day.isoformat()}/{part}.json"
            payload = "".join(_json_line(r) for r in by_day[day])
            damaged = sum(1 for r in by_day[day] if r.get("_damaged"))
            write_bytes(path, payload.encode("utf-8"), storage)
            manifest.append(
                {
                    "kind": kind,
                    "date": day.isoformat(),
                    "path": path,
                    "rows": len(by_day[day]),
                    "stats": json.dumps({"malformed": damaged}),
                }
            )
    for out in outputs:
        for day, docs in out.files.items():
            for name, payload in docs:
                path = f"{landing}/crm_files/date={day.isoformat()}/{name}"
                write_bytes(path, payload, storage)
                manifest.append(
                    {
                        "kind": "crm_files",
                        "date": day.isoformat(),
                        "path": path,
                        "rows": 1,
                        "stats": "{}",
                    }
                )
    advisors = [o.advisor for o in outputs if o.advisor]
    if advisors:
        path = f"{landing}/crm/advisors/{part}.json"
        payload = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in advisors)
        write_bytes(path, payload.encode("utf-8"), storage)
        manifest.append(
            {"kind": "advisors", "date": "", "path": path, "rows": len(advisors), "stats": "{}"}
        )
    return manifest


def generate(spark: SparkSession, cfg: AppConfig, spec: GenSpec) -> dict[str, Any]:
    """Generate the landing zone for ``spec``; returns totals per kind and per date."""
    landing = cfg.paths.landing.rstrip("/")
    storage = cfg.storage
    last_arrival = spec.start_date + timedelta(days=spec.days + 4)
    day = spec.start_date
    while day <= last_arrival:
        for kind in ("clickstream", "crm_notes", "crm_files", "outcomes"):
            delete_prefix(f"{landing}/{kind}/date={day.isoformat()}", storage)
        day += timedelta(days=1)
    delete_prefix(f"{landing}/crm/advisors", storage)

    tasks = max(cfg.generator.partitions, math.ceil(spec.visitors / VISITORS_PER_TASK))

    def simulate_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ids = sorted(int(i) for batch in batches for i in batch["id"])
        for start in range(0, len(ids), VISITORS_PER_FILE):
            chunk = ids[start : start + VISITORS_PER_FILE]
            outputs = [simulate_visitor(spec, i) for i in chunk]
            rows = _write_chunk(landing, storage, f"part-v{chunk[0]:09d}", outputs)
            yield pd.DataFrame(rows, columns=["kind", "date", "path", "rows", "stats"])

    manifest_df = spark.range(0, spec.visitors, numPartitions=tasks).mapInPandas(
        simulate_partition, MANIFEST_SCHEMA
    )
    files = [r.asDict() for r in manifest_df.collect()]  # one row per file written: bounded
    # A trades feed delivers a file every day, empty on a day without trades.
    traded = {f["date"] for f in files if f["kind"] == "outcomes"}
    for offset in range(spec.days):
        day = (spec.start_date + timedelta(days=offset)).isoformat()
        if day not in traded:
            path = f"{landing}/outcomes/date={day}/part-empty.json"
            write_bytes(path, b"", storage)
            files.append({"kind": "outcomes", "date": day, "path": path, "rows": 0,
                          "stats": "{}"})  # fmt: skip
    summary = summarize(spec, files)
    write_bytes(
        f"{landing}/_manifests/generate-{spec.start_date}-{spec.days}d-seed{spec.seed}.json",
        json.dumps({"summary": summary, "files": files}, indent=1).encode(),
        storage,
    )
    return summary


def summarize(spec: GenSpec, files: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals per kind, and per arrival date for web events (what ingest must account for)."""
    totals: dict[str, int] = {}
    clickstream: dict[str, dict[str, int]] = {}
    for f in files:
        totals[f["kind"]] = totals.get(f["kind"], 0) + int(f["rows"])
        if f["kind"] == "clickstream":
            day = clickstream.setdefault(f["date"], {})
            for key, value in json.loads(f["stats"]).items():
                day[key] = day.get(key, 0) + int(value)
    return {
        "seed": spec.seed,
        "start_date": spec.start_date.isoformat(),
        "days": spec.days,
        "advisors": spec.advisors,
        "visitors": spec.visitors,
        "files": len(files),
        "rows": totals,
        "clickstream_by_arrival_date": dict(sorted(clickstream.items())),
    }
