"""Pipeline benchmark: per-stage figures at several data scales, with floors in the same run.

    scripts/bench [--advisors 400] [--scales 1,2,4,8] [--days 2] [--out bench/results]

For each scale the harness generates ``advisors x scale`` advisors over ``days`` days into a
fresh folder and runs the daily pipeline for every day in a fresh process (its own driver JVM,
so no scale inherits another's heap or JIT state; the last day, measured, is a warm daily run),
with the Spark UI's REST API on to read, per step of the last day: wall time, input, output
and shuffle bytes, Spark jobs and exchanges; it samples the RSS of the driver JVM and of this
Python process throughout. Floors on the same files at the largest scale: a bare
``read.json -> write.format("delta")`` for ingest and a DuckDB query for sessionization; and
the Delta I/O floor of the fixed cost: a bare copy of each table for every commit the last day
made (what a step pays at least to read and write a table at the demo's size).
``--parallel N`` runs N steps at once, like the local runner; the last day's wall time is
reported beside the sum of its steps. Figures are printed and written to
``<out>/pipeline-<timestamp>.{json,csv}`` and ``<out>/pipeline-latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psutil

END = date(2026, 11, 24)
STAGES_WITH_EVENTS = ("ingest_clickstream", "build_sessions")


class PeakRss:
    """Background sampler of the peak resident memory of some processes."""

    def __init__(self, pids: dict[str, int], every: float = 0.2) -> None:
        self.procs = {k: psutil.Process(p) for k, p in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.every = every

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rest(spark: Any, path: str) -> Any:
    base = spark.sparkContext.uiWebUrl
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{base}/api/v1/applications/{app}/{path}", timeout=30) as r:
        return json.loads(r.read())


def job_kind(description: str) -> str:
    """Which part of a step a Spark job serves, from the description Delta gives its jobs."""
    if "Compute snapshot" in description or "Filtering files" in description:
        return "delta_snapshot_and_skipping"  # log replay and data skipping, per table read
    if "MERGE operation" in description or "Deletion Vectors" in description:
        return "delta_merge"
    return "queries_and_writes"  # the step's own queries, counts and writes


def _ui_time(text: str) -> float:
    return datetime.strptime(text.removesuffix("GMT"), "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def busy_seconds(jobs: list[dict[str, Any]]) -> float:
    """Length of the union of the jobs' [submitted, completed] intervals."""
    spans = sorted(
        (_ui_time(j["submissionTime"]), _ui_time(j["completionTime"]))
        for j in jobs
        if j.get("submissionTime") and j.get("completionTime")
    )
    total, start, end = 0.0, None, None
    for a, b in spans:
        if end is None or a > end:
            if end is not None:
                total += end - start
            start, end = a, b
        else:
            end = max(end, b)
    return total + (end - start if end is not None else 0.0)


# A Delta table in a query plan: a scan of its files (the location of Delta's file index),
# or of its log (Delta's own snapshot and file-filter queries).
DELTA_TABLE_IN_PLAN = re.compile(
    r"Location: \w*(?:Delta|Tahoe)\w*FileIndex[^\[]*\[([^\],]+)\]"
    r"|Delta Table State #\d+ - (\S+?)/_delta_log"
)


def spark_figures(spark: Any, group: str) -> dict[str, Any]:
    """Jobs, exchanges and bytes of the Spark jobs tagged with ``group``."""
    jobs = [j for j in _rest(spark, "jobs") if j.get("jobGroup") == group]
    stage_ids = {s for j in jobs for s in j.get("stageIds", [])}
    stages = [s for s in _rest(spark, "stages") if s["stageId"] in stage_ids]
    job_ids = {j["jobId"] for j in jobs}
    exchanges, queries, in_a_query = 0, 0, set()
    delta_tables: set[str] = set()
    for execution in _rest(spark, "sql?details=true&planDescription=false&length=100000"):
        ran = job_ids & set(execution.get("successJobIds", []) + execution.get("failedJobIds", []))
        if ran:
            queries += 1
            in_a_query |= ran
            exchanges += sum(
                1 for n in execution.get("nodes", []) if "Exchange" in n.get("nodeName", "")
            )
            # Every Delta table whose log the step read (a snapshot, a file filter, a scan).
            plan = _rest(spark, f"sql/{execution['id']}?details=false&planDescription=true")
            found = DELTA_TABLE_IN_PLAN.findall(plan.get("planDescription", ""))
            delta_tables |= {_table_name(data or log) for data, log in found}
    return {
        "spark_jobs": len(jobs),
        # Queries (SQL executions, Delta's own included) plus jobs outside any: with adaptive
        # execution each shuffle stage of a query is a job of its own, so a query of three
        # exchanges is four jobs; this count does not depend on that setting.
        "spark_queries": queries + len(job_ids - in_a_query),
        "spark_jobs_by_kind": dict(Counter(job_kind(j.get("description", "")) for j in jobs)),
        # Seconds in which at least one of the step's jobs ran: the rest of the step's wall
        # time is the driver alone (planning, Delta log reads and commits, Python).
        "jobs_busy_s": round(busy_seconds(jobs), 2),
        "exchanges": exchanges,
        "delta_tables": sorted(delta_tables),
        "input_bytes": sum(s.get("inputBytes", 0) for s in stages),
        "output_bytes": sum(s.get("outputBytes", 0) for s in stages),
        "shuffle_bytes": sum(s.get("shuffleWriteBytes", 0) for s in stages),
    }


def _config(root: Path, advisors: int, **overrides: Any) -> Any:
    from decisionlake.config import load_config

    return load_config(
        "local",
        overrides={
            "paths.landing": str(root / "landing"),
            "paths.lake": str(root / "lake"),
            "paths.artifacts": str(root / "artifacts"),
            "services.mlflow_tracking_uri": f"sqlite:///{root}/mlflow/mlflow.db",
            "spark.ui_enabled": True,
            "generator.advisors": advisors,
            **overrides,
        },
    )


def lake_settings(cfg: Any) -> list[str]:
    """``--set`` values that point every step at ``cfg``'s folders and MLflow store."""
    return [
        f"paths.landing={cfg.paths.landing}",
        f"paths.lake={cfg.paths.lake}",
        f"paths.artifacts={cfg.paths.artifacts}",
        f"services.mlflow_tracking_uri={cfg.services.mlflow_tracking_uri}",
    ]


def run_scale(
    scale: int, advisors: int, days: int, root: Path, *, parallel: int = 1
) -> dict[str, Any]:
    """Generate, run the pipeline for every day, measure the last day per step.

    ``parallel`` steps whose dependencies are done run at once (the local runner's
    ``--parallel``); the last day's wall time is then less than the sum of its steps.
    """
    from decisionlake.core.spark import get_spark
    from decisionlake.dev.generate import build_spec, generate
    from decisionlake.ops.pipeline import (
        date_range,
        in_process_executor,
        load_pipeline,
        run_pipeline,
    )

    cfg = _config(root, advisors * scale)
    spark = get_spark(cfg, f"bench-x{scale}")
    spec = build_spec(cfg, end_date=END, days=days, advisors=advisors * scale, seed=7)
    t0 = time.perf_counter()
    manifest = generate(spark, cfg, spec)
    generated_s = time.perf_counter() - t0
    settings = lake_settings(cfg)
    executor = in_process_executor("local")
    steps: dict[str, dict[str, Any]] = {}

    spans: dict[str, tuple[float, float]] = {}  # the last day's steps: wall-clock start, end

    def tagged(step: Any, run_date: date, extra: Any) -> Any:
        spark.sparkContext.setJobGroup(f"{run_date}:{step.name}", step.name)
        began = time.time()
        try:
            return executor(step, run_date, extra)
        finally:
            if run_date == END:
                spans[step.name] = (began, time.time())

    pids = {"driver_jvm": spark.sparkContext._gateway.proc.pid, "python": os.getpid()}
    dates = date_range(spec.start_date, END)
    with PeakRss(pids) as rss:
        started = time.perf_counter()
        results = run_pipeline(load_pipeline(), dates[:-1], tagged, settings=settings,
                               max_retries=0, parallelism=parallel)  # fmt: skip
        last_started = time.perf_counter()
        results += run_pipeline(load_pipeline(), dates[-1:], tagged, settings=settings,
                                max_retries=0, parallelism=parallel)  # fmt: skip
        last_day_wall_s = time.perf_counter() - last_started
        pipeline_s = time.perf_counter() - started
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        raise RuntimeError(
            f"x{scale}: {failed[0].step} on {failed[0].run_date}: {failed[0].reason}"
        )
    last = [r for r in results if r.run_date == END]
    events = manifest["rows"]["clickstream"]
    cores = os.cpu_count() or 1
    for r in last:
        figures = spark_figures(spark, f"{END}:{r.step}")
        steps[r.step] = {"seconds": round(r.seconds, 2), **figures}
    day_events = sum(
        v["lines"]
        for d, v in manifest["clickstream_by_arrival_date"].items()
        if d == END.isoformat()
    )
    for name in STAGES_WITH_EVENTS:
        s = steps[name]
        s["events_per_s_per_core"] = round(day_events / max(s["seconds"], 1e-9) / cores, 1)
    out = {
        "scale": scale,
        "advisors": advisors * scale,
        "days": days,
        "events_total": events,
        "events_last_day": day_events,
        "generate_s": round(generated_s, 1),
        "pipeline_s": round(pipeline_s, 1),
        "last_day_s": round(sum(r.seconds for r in last), 1),
        "parallel": parallel,
        "last_day_wall_s": round(last_day_wall_s, 1),
        "peak_driver_jvm_rss_mb": round(rss.peak["driver_jvm"] / 2**20, 1),
        "peak_python_rss_mb": round(rss.peak["python"] / 2**20, 1),
        "driver_heap_after_gc_mb": _heap_after_gc_mb(spark),
        "steps": steps,
    }
    out["floors"] = floors(spark, cfg, END)
    out["floors"]["delta_io"] = delta_io_floor(
        spark, cfg, spans, {name: s["delta_tables"] for name, s in steps.items()}
    )
    spark.stop()
    return out


def _heap_after_gc_mb(spark: Any) -> float:
    """Driver JVM heap still in use after a full GC: what the driver retains."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    used = jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
    return round(used.getUsed() / 2**20, 1)


def floors(spark: Any, cfg: Any, day: date) -> dict[str, Any]:
    """Bare read+write of the day's clickstream files; DuckDB sessionization of the events."""
    import duckdb

    # The table's live files (what a Delta reader sees), not every Parquet file under it.
    events = spark.read.format("delta").load(f"{cfg.paths.lake}/bronze/clickstream")
    files = ", ".join(f"'{f.removeprefix('file:')}'" for f in events.inputFiles())
    query = f"""
        WITH e AS (
          SELECT cookie_id AS visitor_id, event_ts
          FROM read_parquet([{files}], hive_partitioning = true)
          WHERE event_date BETWEEN DATE '{day}' - INTERVAL 3 DAY AND DATE '{day}'),
        g AS (
          SELECT *, CASE WHEN event_ts - lag(event_ts) OVER w > INTERVAL 30 MINUTE
                          OR lag(event_ts) OVER w IS NULL THEN 1 ELSE 0 END AS new_session
          FROM e WINDOW w AS (PARTITION BY visitor_id ORDER BY event_ts)),
        s AS (SELECT *, sum(new_session) OVER (PARTITION BY visitor_id ORDER BY event_ts) AS n
              FROM g)
        SELECT visitor_id, n, min(event_ts), max(event_ts), count(*) FROM s GROUP BY ALL
    """
    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    t0 = time.perf_counter()
    sessions = connection.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
    duck_s = time.perf_counter() - t0
    landing = f"{cfg.paths.landing}/clickstream/date={day.isoformat()}"
    target = f"{cfg.paths.artifacts}/floor_ingest"
    spark.sparkContext.setJobGroup("floor:ingest", "floor")
    runs = []
    for _ in range(5):  # a short measurement: the median of five
        t0 = time.perf_counter()
        spark.read.json(landing).write.format("delta").mode("overwrite").save(target)
        runs.append(time.perf_counter() - t0)
    ingest_s = statistics.median(runs)
    return {
        "ingest_bare_read_write_s": round(ingest_s, 2),
        "ingest_bare_runs": [round(r, 2) for r in runs],
        "sessions_duckdb_s": round(duck_s, 3),
        "sessions_duckdb_rows": int(sessions),
    }


def step_of(spans: dict[str, tuple[float, float]], t: float) -> str:
    """The step whose (start, end) span holds time ``t``, else the nearest one: a commit's
    timestamp and the runner's clock round differently."""
    return min(spans, key=lambda n: max(spans[n][0] - t, 0.0, t - spans[n][1]))


def delta_io_floor(
    spark: Any,
    cfg: Any,
    spans: dict[str, tuple[float, float]],
    step_tables: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The fixed cost of the Delta I/O alone: for every commit a step made on the last day,
    a bare copy of that table (``read.format("delta") -> write.format("delta")``, overwrite,
    nothing else). The first pass creates each copy and warms the JVM; the second, measured
    (seconds and Spark jobs), overwrites the existing copy, as a step writes into a table
    with history: snapshot, file listing, the files to remove, the scan, the write, the commit.

    At the demo's size every table is small and a copy costs what a step's read and write of
    it cost at least, so a step's floor (the sum over its commits) is a lower bound on its
    time and its jobs: its other reads, its MERGEs and its transformations come on top. (At
    scale a whole-table copy is more than the day's slice: read it at the smallest scale.)

    Reads (``step_tables``: each step's Delta tables as ``layer.table``, from its query
    plans): every table a step read and did not write is read cold by a bare filtered scan
    (``cold_reads``); a step's read jobs plus its commits' jobs are a lower bound on its
    jobs in a spark-submit of its own, as on EMR, before any query of its own.
    """
    from delta.tables import DeltaTable

    lake_root = Path(cfg.paths.lake)
    tables = sorted(p.parent for p in lake_root.glob("*/*/_delta_log"))
    first = min((b for b, _ in spans.values()), default=0.0)
    last = max((e for _, e in spans.values()), default=0.0)
    commits: dict[Path, list[float]] = {}
    for table in tables:
        history = DeltaTable.forPath(spark, str(table)).history().select("timestamp")
        stamps = [r["timestamp"].timestamp() for r in history.collect()]  # one row per commit
        day = [t for t in stamps if first - 1 <= t <= last + 1]
        if day:
            commits[table] = day
    scratch = Path(cfg.paths.artifacts) / "floor_delta_io"
    name = {t: f"{t.parent.name}.{t.name}" for t in commits}
    copy_s: dict[Path, float] = {}
    for attempt in range(2):  # the first pass creates and warms up; the second is measured
        for table in commits:
            spark.sparkContext.setJobGroup(f"floor:delta_io:{attempt}:{name[table]}", "floor")
            started = time.perf_counter()
            (spark.read.format("delta").load(str(table))
             .write.format("delta").mode("overwrite").save(str(scratch / name[table])))  # fmt: skip
            copy_s[table] = time.perf_counter() - started
    jobs_by_group = Counter(j.get("jobGroup") for j in _rest(spark, "jobs"))
    copy_jobs = {t: jobs_by_group[f"floor:delta_io:1:{name[t]}"] for t in commits}

    per_step: dict[str, float] = {}
    per_step_jobs: dict[str, int] = {}
    written: dict[str, set[str]] = {}
    for table, stamps in commits.items():
        for t in stamps:
            step = step_of(spans, t)
            per_step[step] = per_step.get(step, 0.0) + copy_s[table]
            per_step_jobs[step] = per_step_jobs.get(step, 0) + copy_jobs[table]
            written.setdefault(step, set()).add(name[table])
    known = {f"{t.parent.name}.{t.name}": t for t in tables}
    read_only = {
        step: sorted(set(names) & set(known) - written.get(step, set()))
        for step, names in (step_tables or {}).items()
    }
    read_jobs, read_s, warm_s = cold_reads(
        spark, {n: known[n] for r in read_only.values() for n in r}
    )
    return {
        "commits": sum(len(v) for v in commits.values()),
        "tables": {name[t]: len(v) for t, v in commits.items()},
        "copy_s": {name[t]: round(v, 2) for t, v in copy_s.items()},
        "copy_jobs": {name[t]: v for t, v in copy_jobs.items()},
        "day_s": round(sum(copy_s[t] * len(v) for t, v in commits.items()), 2),
        "by_step_s": {k: round(v, 2) for k, v in sorted(per_step.items())},
        "by_step_jobs": dict(sorted(per_step_jobs.items())),
        "read_jobs": read_jobs,
        "by_step_read_jobs": {
            step: sum(read_jobs[n] for n in names) for step, names in sorted(read_only.items())
        },
        "by_step_read_tables": dict(sorted(read_only.items())),
        "read_s": {n: round(v, 2) for n, v in sorted(read_s.items())},
        "by_step_read_s": {
            step: round(sum(read_s[n] for n in names), 2)
            for step, names in sorted(read_only.items())
        },
        "warm_read_s": {n: round(v, 2) for n, v in sorted(warm_s.items())},
        # The day's Delta I/O floor: its commits' bare copies and its steps' reads, each step
        # reading cold as a spark-submit of its own does (a table read by two steps twice),
        # or warm, every snapshot already in the process (in-process, the least it can be).
        "day_with_reads_s": round(
            sum(copy_s[t] * len(v) for t, v in commits.items())
            + sum(read_s[n] for names in read_only.values() for n in names),
            2,
        ),
        "day_with_warm_reads_s": round(
            sum(copy_s[t] * len(v) for t, v in commits.items())
            + sum(warm_s[n] for names in read_only.values() for n in names),
            2,
        ),
    }


def _table_name(location: str) -> str:
    """``layer.table`` of a table's location (``.../lake/silver/sessions``)."""
    layer, table = location.rstrip("/").split("/")[-2:]
    return f"{layer}.{table}"


def cold_reads(
    spark: Any, tables: dict[str, Path]
) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """The Spark jobs Delta runs to read each table cold, and the read's seconds, as a step in
    a spark-submit of its own reads it: Delta's log cache cleared, then a bare scan filtered on
    the table's first partition column (steps read slices). Jobs: only those Delta describes as
    its own (snapshot, state aggregation, file filter), not the scan's. Seconds: the whole read,
    the scan included (a step reads the rows too). Twice; the second measured. Then once warm
    (the snapshot and its state cached, as for a later read in the same process): its seconds.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    delta_log = spark.sparkContext._jvm.org.apache.spark.sql.delta.DeltaLog
    partitions = {
        n: list(DeltaTable.forPath(spark, str(p)).detail().first()["partitionColumns"])
        for n, p in tables.items()
    }  # one row each

    def read(n: str, path: Path) -> float:
        started = time.perf_counter()
        df = spark.read.format("delta").load(str(path))
        if partitions[n]:
            df = df.where(F.col(partitions[n][0]).isNotNull())
        # A scan, not a count: Delta answers a count from its statistics without one.
        df.agg(F.max(F.length(F.to_json(F.struct(*df.columns))))).collect()  # one row
        return time.perf_counter() - started

    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    for attempt in range(2):
        for n, path in sorted(tables.items()):
            delta_log.clearCache()
            spark.sparkContext.setJobGroup(f"floor:delta_read:{attempt}:{n}", "floor")
            cold[n] = read(n, path)
            if attempt:
                spark.sparkContext.setJobGroup(f"floor:delta_read_warm:{n}", "floor")
                warm[n] = read(n, path)
    jobs = _rest(spark, "jobs")
    delta_jobs = {
        n: sum(
            1
            for j in jobs
            if j.get("jobGroup") == f"floor:delta_read:1:{n}"
            and "Delta" in (j.get("description") or "")
        )
        for n in sorted(tables)
    }
    return delta_jobs, cold, warm


def _table(results: list[dict[str, Any]]) -> str:
    lines = []
    head = (
        f"{'scale':>5} {'step':<22} {'seconds':>8} {'ev/s/core':>10} {'in MB':>8} "
        f"{'out MB':>8} {'shuffle MB':>10} {'jobs':>5} {'snap':>5} {'merge':>5} {'busy s':>7} "
        f"{'exch':>5} {'query':>5} {'io jobs':>7} {'rd jobs':>7}"
    )
    lines.append(head)
    for res in results:
        # the step's Delta I/O floor in jobs (its commits copied bare), when measured
        io = res.get("floors", {}).get("delta_io", {})
        io_jobs, read_jobs = io.get("by_step_jobs", {}), io.get("by_step_read_jobs", {})
        for step, s in res["steps"].items():
            kinds = s.get("spark_jobs_by_kind", {})
            lines.append(
                f"{res['scale']:>4}x {step:<22} {s['seconds']:>8.2f} "
                f"{s.get('events_per_s_per_core', ''):>10} {s['input_bytes'] / 2**20:>8.2f} "
                f"{s['output_bytes'] / 2**20:>8.2f} {s['shuffle_bytes'] / 2**20:>10.2f} "
                f"{s['spark_jobs']:>5} {kinds.get('delta_snapshot_and_skipping', 0):>5} "
                f"{kinds.get('delta_merge', 0):>5} {s['jobs_busy_s']:>7.2f} {s['exchanges']:>5} "
                f"{s.get('spark_queries', ''):>5} {io_jobs.get(step, ''):>7} "
                f"{read_jobs.get(step, ''):>7}"
            )
    return "\n".join(lines)


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios against the floors and the scaling slope."""
    base, top = results[0], results[-1]
    ratio = top["last_day_s"] / base["last_day_s"]
    per_event = [r["last_day_s"] / max(r["events_last_day"], 1) for r in results]
    out = {
        "scales": [r["scale"] for r in results],
        "last_day_seconds": [r["last_day_s"] for r in results],
        "seconds_per_1k_events": [round(1000 * p, 4) for p in per_event],
        "time_ratio_top_vs_1x": round(ratio, 2),
        "data_ratio_top_vs_1x": round(top["events_last_day"] / base["events_last_day"], 2),
        "driver_jvm_rss_ratio": round(
            top["peak_driver_jvm_rss_mb"] / base["peak_driver_jvm_rss_mb"], 3
        ),
        "python_rss_ratio": round(top["peak_python_rss_mb"] / base["peak_python_rss_mb"], 3),
        "driver_heap_after_gc_ratio": round(
            top["driver_heap_after_gc_mb"] / base["driver_heap_after_gc_mb"], 3
        ),
    }
    f = top["floors"]
    out["ingest_vs_bare_floor"] = round(
        top["steps"]["ingest_clickstream"]["seconds"] / f["ingest_bare_read_write_s"], 2
    )
    out["ingest_vs_bare_floor_by_scale"] = [
        round(
            r["steps"]["ingest_clickstream"]["seconds"] / r["floors"]["ingest_bare_read_write_s"],
            2,
        )
        for r in results
    ]
    io = base["floors"].get("delta_io", {})
    if io.get("day_s"):
        out["smallest_day_vs_delta_io_floor"] = round(base["last_day_s"] / io["day_s"], 2)
    if io.get("day_with_reads_s"):
        out["smallest_day_delta_io_with_reads_s"] = io["day_with_reads_s"]
        out["smallest_day_delta_io_with_warm_reads_s"] = io["day_with_warm_reads_s"]
    out["sessions_vs_duckdb"] = round(
        top["steps"]["build_sessions"]["seconds"] / max(f["sessions_duckdb_s"], 1e-3), 1
    )
    return out


@contextlib.contextmanager
def bench_services() -> Any:
    """moto and PostgreSQL for the daily pipeline (Secrets Manager, SNS, Glue, the
    warehouse), their addresses in this process's environment, stopped afterwards."""
    from decisionlake.dev import services

    work = Path(tempfile.mkdtemp(prefix="bench-services-"))
    os.environ.update(services.MOTO_ENV)
    moto = services.MotoServer(work / "moto.log").start()
    pg = services.EmbeddedPostgres(work / "pg").start()
    try:
        provisioned = moto.provision()
        services.store_warehouse_secret(moto.endpoint, pg.port)
        os.environ["DL_S3_ENDPOINT"] = moto.endpoint
        os.environ["DL_SNS_TOPIC_ARN"] = provisioned["sns_topic_arn"]
        yield
    finally:
        pg.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument("--advisors", type=int, default=400, help="advisors at scale 1")
    parser.add_argument("--scales", default="1,2,4,8")
    parser.add_argument("--days", type=int, default=2, help="the last one is measured")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument(
        "--parallel", type=int, default=1, help="steps at once, as the runner's --parallel"
    )
    parser.add_argument("--worker-scale", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-root", help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_scale:
        return _worker(args)
    scales = [int(s) for s in args.scales.split(",")]
    results = []
    with bench_services():
        results = _run_all(scales, args)
    _report(results, args)
    return 0


def _run_all(scales: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each scale in its own process: a fresh driver JVM, so memory figures are per scale."""
    results = []
    for scale in scales:
        root = Path(tempfile.mkdtemp(prefix=f"bench-x{scale}-"))
        try:
            print(f"scale {scale}x: {args.advisors * scale} advisors, {args.days} day(s) ...",
                  flush=True)  # fmt: skip
            result_file = root / "result.json"
            command = [sys.executable, "-m", "decisionlake.dev.bench.pipeline", "--worker-scale",
                       str(scale), "--advisors", str(args.advisors), "--days", str(args.days),
                       "--parallel", str(args.parallel),
                       "--worker-root", str(root), "--worker-result", str(result_file)]  # fmt: skip
            subprocess.run(command, check=True)
            res = json.loads(result_file.read_text())
            print(f"  {res['events_last_day']:,} events on the last day, last day "
                  f"{res['last_day_s']}s ({res['last_day_wall_s']}s wall, {res['parallel']} "
                  f"at once), peak driver JVM {res['peak_driver_jvm_rss_mb']} MB "
                  f"(heap after GC {res['driver_heap_after_gc_mb']} MB), "
                  f"Python {res['peak_python_rss_mb']} MB", flush=True)  # fmt: skip
            results.append(res)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return results


def _worker(args: argparse.Namespace) -> int:
    """One scale in this process (started by :func:`_run_all`); writes its figures as JSON."""
    res = run_scale(args.worker_scale, args.advisors, args.days, Path(args.worker_root),
                    parallel=args.parallel)  # fmt: skip
    Path(args.worker_result).write_text(json.dumps(res))
    return 0


def _report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(_table(results))
    figures = summary(results)
    print()
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"pipeline-{stamp}.json", "pipeline-latest.json"):  # the latter is committed
        (out / name).write_text(json.dumps({"summary": figures, "runs": results}, indent=1))
    with (out / f"pipeline-{stamp}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scale", "step", "seconds", "events_per_s_per_core", "input_bytes",
                         "output_bytes", "shuffle_bytes", "spark_jobs", "exchanges"])  # fmt: skip
        for res in results:
            for step, s in res["steps"].items():
                writer.writerow([res["scale"], step, s["seconds"], s.get("events_per_s_per_core"),
                                 s["input_bytes"], s["output_bytes"], s["shuffle_bytes"],
                                 s["spark_jobs"], s["exchanges"]])  # fmt: skip
    print(f"\nwritten: {out}/pipeline-{stamp}.json and .csv")


if __name__ == "__main__":
    sys.exit(main())
