"""Scale benchmark: the daily pipeline at real volume, each scale with a month of history.

    scripts/bench-scale [--events 125000,250000,500000,1000000] [--history-days 30]
                        [--warehouse-rows 1000000] [--out bench/results]
                        [--landing DIR,...] [--history-store DIR] [--rebuild-history]
                        [--history-only]

Per scale (``events`` a day; advisors = events / 20, the generator's rate, measured): generate
``history_days + 1`` days and process the history in a process of its own, and save that
history (landing, lake, artifacts, MLflow store) in the history store; then, in another
process (a driver JVM that has not run the history), restore it, run the last day once on a
copy to warm the JVM up (``--cold``: not), and run the whole daily pipeline for the last day
on the restored history and measure it per step. A later
run finds the saved history and only restores and measures (minutes instead of an hour); the
figures name the commit that built the history and the one measured. ``--rebuild-history``
when the tables' layout changes; ``--history-only`` builds the missing histories and stops (the
set-up need not run alone, the measure must).

The history is processed in bulk, which is the only way a month at a million events a day fits
in a session here: every history day is ingested by its own ``ingest`` runs (as every day is),
then ``build_sessions``, ``build_identity``, ``build_text_features`` and ``build_advisor_360`` run
once on the last history day with ``clickstream.lookback_days`` covering the month (the tests
prove a run over a window gives the tables a day-by-day run gives). The measured day is then
the production code path, unchanged: every step of ``conf/pipeline.yaml`` on tables that hold
the month, with the default three-day lookback.

Per step of the measured day: wall seconds, events per second per core, Spark jobs (by kind),
stages, shuffle and spill bytes; peak RSS of the driver JVM (in ``local[*]`` also the
executors' JVM) and of Python, the driver heap after a full GC (as it is, with its largest
classes of live objects, and what the driver itself retains: with cached data, Delta's snapshot
cache and Python's garbage released and the idle task threads ended). Floors on
the same files in the same process: a bare ``read.json -> write delta`` of the day (median of
five), a bare Spark sessionization of the window (read, one window function, write) and
DuckDB's, and after all scales the warehouse writer against the bare-COPY ceiling
(``scripts/bench-warehouse``). Figures go to ``<out>/scale-latest.json`` (and a timestamped copy).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from decisionlake.dev.bench.pipeline import (
    END,
    PeakRss,
    _config,
    _heap_after_gc_mb,
    _rest,
    bench_services,
    floors,
    lake_settings,
    spark_figures,
)

HISTORY_RECORD = "bench-history.json"  # in a saved history: how and when it was built
EVENTS_PER_ADVISOR = 20  # what the generator's visitors make a day (the manifest says exactly)
INGEST_DAILY = ("ingest_clickstream", "ingest_outcomes", "ingest_text")
BUILD_ONCE = ("build_sessions", "build_identity", "build_text_features", "build_advisor_360")


def _subset(pipeline: Any, names: tuple[str, ...]) -> Any:
    """The pipeline's steps of ``names``, dependencies outside them dropped."""
    steps = tuple(
        replace(s, depends_on=tuple(d for d in s.depends_on if d in names), retries=0)
        for s in pipeline.steps
        if s.name in names
    )
    return replace(pipeline, name=f"{pipeline.name}-subset", steps=steps)


def must(results: list[Any], what: str) -> float:
    """The steps' seconds in all, or the first failure as an error naming ``what``."""
    failed = [r for r in results if r.status != "succeeded"]
    if failed:
        raise RuntimeError(f"{what}: {failed[0].step} on {failed[0].run_date}: {failed[0].reason}")
    return sum(r.seconds for r in results)


def _spill_and_stages(spark: Any, group: str) -> dict[str, Any]:
    jobs = [j for j in _rest(spark, "jobs") if j.get("jobGroup") == group]
    stage_ids = {s for j in jobs for s in j.get("stageIds", [])}
    stages = [s for s in _rest(spark, "stages") if s["stageId"] in stage_ids]
    return {
        "stages": len(stages),
        "spill_memory_bytes": sum(s.get("memoryBytesSpilled", 0) for s in stages),
        "spill_disk_bytes": sum(s.get("diskBytesSpilled", 0) for s in stages),
        "peak_execution_memory_bytes": max(
            (s.get("peakExecutionMemory", 0) for s in stages), default=0
        ),
    }


def _reused_manifest(landing: Path, spec: Any) -> dict[str, Any]:
    """The generator's summary of a landing zone made earlier, checked to cover ``spec``."""
    found = sorted((landing / "_manifests").glob("generate-*.json"))
    if not found:
        raise RuntimeError(f"no generator manifest under {landing}/_manifests")
    summary = json.loads(found[-1].read_text())["summary"]
    first = date.fromisoformat(summary["start_date"])
    last = first + timedelta(days=summary["days"] - 1)
    if first > spec.start_date or last != END or summary["advisors"] != spec.advisors:
        raise RuntimeError(
            f"{landing} holds {summary['advisors']} advisors from {first} to {last}; this run "
            f"needs {spec.advisors} from {spec.start_date} to {END}"
        )
    return summary


def _median_s(spark: Any, group: str, run: Callable[[], None], *, runs: int) -> float:
    """The median seconds of ``runs`` runs of ``run`` (a floor's whole read-compute-write),
    its Spark jobs in job group ``group``."""
    spark.sparkContext.setJobGroup(group, "floor")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2)


def bare_spark_sessions_s(spark: Any, cfg: Any, day: date, *, runs: int = 3) -> float:
    """Read the window's events, one window function, write the sessions (median of runs)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    first = day - timedelta(days=3)
    target = f"{cfg.paths.artifacts}/floor_sessions"

    def run() -> None:
        events = (
            spark.read.format("delta")
            .load(cfg.table_uri("bronze.clickstream"))
            .where(F.col("event_date").between(F.lit(first), F.lit(day)))
            .select(F.col("cookie_id").alias("visitor_id"), "event_ts")
        )
        w = Window.partitionBy("visitor_id").orderBy("event_ts")
        gap = F.col("event_ts").cast("long") - F.lag("event_ts").over(w).cast("long")
        sessions = (
            events.withColumn(
                "n", F.sum(F.when(gap.isNull() | (gap > 1800), 1).otherwise(0)).over(w)
            )
            .groupBy("visitor_id", "n")
            .agg(
                F.min("event_ts").alias("start"),
                F.max("event_ts").alias("end"),
                F.count("*").alias("events"),
            )
        )
        sessions.write.format("delta").mode("overwrite").save(target)

    return _median_s(spark, "floor:sessions", run, runs=runs)


def validated_ingest_s(spark: Any, cfg: Any, day: date, *, runs: int = 3) -> float:
    """What the ingest's line contract costs alone: the day's files read as lines, validated by
    the web source's rules and written with their verdicts to a Delta table (no accounting, no
    dedup against bronze, no quarantine; median of runs). Between the bare floor and the
    step, it says how much of the gap is the validation itself."""
    from decisionlake.io import lake
    from decisionlake.sources import web

    landing = f"{cfg.paths.landing}/clickstream/date={day.isoformat()}"
    target = f"{cfg.paths.artifacts}/floor_validated_ingest"

    def run() -> None:
        validated = web.validate_events(lake.read_text_lines(spark, landing), ingest_date=day)
        # Every line with its verdict, the parsed struct as it is: a filter on ``reason`` or
        # ``_p.*`` here would be pushed into the projection and parse each line once per field
        # (the step filters its cached batch instead).
        verdicts = validated.select("_p", "_ts_ms", "source_file", "reason")
        verdicts.write.format("delta").mode("overwrite").save(target)

    return _median_s(spark, "floor:validated_ingest", run, runs=runs)


def deduplicated_ingest_s(spark: Any, cfg: Any, day: date, *, runs: int = 3) -> float:
    """The line contract and what keeping the key unique adds: the day's lines validated and
    cached (as the step caches its batch, so each line is parsed once), the valid ones in
    bronze's shape, one per key by the step's own ``dedupe_on``, written to a Delta table (no
    accounting, no quarantine, no MERGE into bronze; median of runs). What any ingest of this
    source that keeps its key unique pays at least, beside the bare floor."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from decisionlake.io import lake
    from decisionlake.io.ingest import dedupe_on
    from decisionlake.sources import web

    spec = web.SOURCE.ingest
    landing = f"{cfg.paths.landing}/clickstream/date={day.isoformat()}"
    target = f"{cfg.paths.artifacts}/floor_deduplicated_ingest"

    def run() -> None:
        validated = web.validate_events(lake.read_text_lines(spark, landing), ingest_date=day)
        batch = validated.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rows = spec.to_bronze(
                batch, ingest_date=day, run_id="floor", ingested_at=F.current_timestamp()
            ).transform(dedupe_on, key=spec.key, order_by=spec.order_by)
            rows.write.format("delta").mode("overwrite").save(target)
        finally:
            batch.unpersist()

    return _median_s(spark, "floor:deduplicated_ingest", run, runs=runs)


def _git_commit() -> dict[str, Any]:
    """The checkout's commit and whether the tree has uncommitted changes (what a figure was
    made with), from the release's ``git_sha``."""
    from decisionlake.ops.release import git_sha

    try:
        sha = git_sha()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha.removesuffix("-dirty"), "dirty": sha.endswith("-dirty")}


def _restore_history(saved: Path, root: Path) -> dict[str, Any]:
    """``root`` made again from the history saved at ``saved`` (every folder as it was when
    the history was done: landing, lake, artifacts, MLflow store); what the save recorded."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(saved, root)
    return json.loads((saved / HISTORY_RECORD).read_text())


def _save_history(root: Path, saved: Path, record: dict[str, Any]) -> None:
    """A copy of ``root`` at the end of the history, for later runs of the measured day."""
    partial = saved.with_name(saved.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(root, partial)
    (partial / HISTORY_RECORD).write_text(json.dumps(record, indent=1))
    shutil.rmtree(saved, ignore_errors=True)
    partial.rename(saved)  # a save cut off half way is never taken for a history


def _driver_memory(spark: Any, heap_dump: Path | None = None) -> dict[str, Any]:
    """The driver JVM's heap after a full GC, and what it is made of.

    In ``local[*]`` the driver JVM is also the executors, so its heap holds, besides the
    driver's own objects, the block manager's storage (cached blocks, broadcasts), Delta's
    cached snapshot states and the executor task threads' leftovers. A heap dump of this
    point (``--heap-dump``) showed the largest of these: whole 64 MiB sort pages that finished
    SQL sorts leave reachable from their task thread's thread-locals (one page per sort
    however small, 7 to 13 of them, i.e. 450 to 840 MB, whatever the data), gone only when the
    thread ends. So it is measured twice: as it is, with its largest classes of live objects
    (``jmap -histo:live``); and what the driver itself retains: after releasing cached data,
    Delta's snapshot cache and Python's garbage, and once the idle task threads have ended
    (the executor's pool keeps an idle thread 60 s)."""
    jvm = spark.sparkContext._jvm
    as_is = _heap_after_gc_mb(spark)
    storage = sum(e.get("memoryUsed", 0) for e in _rest(spark, "executors"))
    pid = spark.sparkContext._gateway.proc.pid
    top_classes = _live_histogram(pid)
    if heap_dump:  # for a heap analyser: who holds what
        subprocess.run(["jmap", f"-dump:live,format=b,file={heap_dump}", str(pid)], check=True)
    spark.catalog.clearCache()
    for rdd in list(spark.sparkContext._jsc.getPersistentRDDs().values()):
        rdd.unpersist(True)
    jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    # JVM objects that only Python proxies no longer referenced keep alive (py4j releases
    # them when Python collects the proxies).
    gc.collect()
    waited = _task_threads_ended(jvm, timeout_s=120)
    released = _heap_after_gc_mb(spark)
    released = min(released, _heap_after_gc_mb(spark))  # a second GC settles finalizers
    return {
        "driver_heap_after_gc_mb": as_is,
        "driver_storage_memory_mb": round(storage / 2**20, 1),
        "driver_heap_after_release_mb": released,
        "driver_task_threads_idle_wait_s": waited,
        "driver_heap_top_classes": top_classes,
        "driver_heap_top_classes_after_release": _live_histogram(pid, top=6),
    }


def _task_threads_ended(jvm: Any, *, timeout_s: float) -> float | None:
    """Seconds until no executor task thread is left in the JVM (None: still some at
    ``timeout_s``)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        names = [t.getName() for t in jvm.java.lang.Thread.getAllStackTraces().keySet()]
        if not any(n.startswith("Executor task launch worker") for n in names):
            return round(time.perf_counter() - t0, 1)
        time.sleep(2)
    return None


def _live_histogram(pid: int, top: int = 12) -> list[dict[str, Any]]:
    """The ``top`` classes by bytes of live objects in JVM ``pid`` (``jmap -histo:live``;
    empty where the JDK has no jmap)."""
    try:
        out = subprocess.run(["jmap", "-histo:live", str(pid)], capture_output=True, text=True,
                             timeout=300, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].endswith(":") and parts[0][:-1].isdigit():
            rows.append({"class": parts[3], "instances": int(parts[1]),
                         "mb": round(int(parts[2]) / 2**20, 1)})  # fmt: skip
    return rows[:top]


def run_one(
    events_per_day: int,
    history_days: int,
    root: Path,
    *,
    driver_memory: str = "14g",
    landing: str | None = None,
    saved_history: Path,
    heap_dump: Path | None = None,
    warm_up: bool = False,
) -> dict[str, Any]:
    """Either build the history and save it to ``saved_history`` (generate, process the
    history in bulk; returns what the save recorded), or, if a history was saved there, make
    ``root`` from it and run and measure the last day.

    The measured day thus always runs in a driver JVM of its own that has not run the history,
    on a history built the same way whichever commit is measured. With ``warm_up`` the JVM
    first runs the same day on another copy of the history (class loading, the JIT, Delta's,
    MLflow's and ua-parser's first use: a warm daily run, as the issue asks); the measured
    day's tables are still read cold (their Delta logs not cached), as a step's spark-submit
    reads them. ``root`` must be the same folder for the build and every measure: the MLflow
    store holds absolute paths."""
    from decisionlake.core.spark import get_spark
    from decisionlake.dev.generate import build_spec
    from decisionlake.ops.pipeline import in_process_executor, load_pipeline, run_pipeline

    advisors = max(events_per_day // EVENTS_PER_ADVISOR, 1)
    # In local[*] the driver JVM is also the executors: give it most of the machine, so no
    # step spills for want of memory a setting could give it (spill is reported per step).
    memory = {"spark.driver_memory": driver_memory}
    cfg = _config(root, advisors, **memory, **({"paths.landing": landing} if landing else {}))
    restored = (saved_history / HISTORY_RECORD).exists()
    if restored:
        t0 = time.perf_counter()
        record = _restore_history(saved_history, root)
        restore_s = round(time.perf_counter() - t0, 1)
        print(f"  history restored (built at {record['commit']}) in {restore_s:.0f}s", flush=True)
    spark = get_spark(cfg, f"bench-scale-{events_per_day}")
    spec = build_spec(cfg, end_date=END, days=history_days + 1, advisors=advisors, seed=7)
    settings = lake_settings(cfg)
    executor = in_process_executor("local")
    pipeline = load_pipeline()
    if not restored:
        setup = _build_history(spark, cfg, spec, landing, settings, executor, pipeline,
                               history_days)  # fmt: skip
        setup.pop("manifest")
        record = {**_git_commit(), "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "root": str(root), "setup": setup}  # fmt: skip
        spark.stop()
        _save_history(root, saved_history, record)
        return {"history_saved": str(saved_history), **record}
    manifest = _reused_manifest(Path(cfg.paths.landing), spec)
    setup = {**record["setup"], "history_restore_s": restore_s,
             "history": {k: v for k, v in record.items() if k != "setup"}}  # fmt: skip
    if warm_up:
        setup["warm_up_s"] = _warm_up(spark, saved_history, root.with_name("warm-up"), advisors,
                                      memory, executor, pipeline)  # fmt: skip

    def tagged(step: Any, run_date: date, extra: Any) -> Any:
        spark.sparkContext.setJobGroup(f"{run_date}:{step.name}", step.name)
        return executor(step, run_date, extra)

    pids = {"driver_jvm": spark.sparkContext._gateway.proc.pid, "python": os.getpid()}
    with PeakRss(pids) as rss:
        started = time.perf_counter()
        results = run_pipeline(pipeline, [END], tagged, settings=settings, max_retries=0,
                               parallelism=1)  # fmt: skip
        pipeline_s = time.perf_counter() - started
    must(results, "measured day")
    day_events = manifest["clickstream_by_arrival_date"][END.isoformat()]["lines"]
    cores = os.cpu_count() or 1
    steps: dict[str, dict[str, Any]] = {}
    for r in results:
        group = f"{END}:{r.step}"
        figures = {**spark_figures(spark, group), **_spill_and_stages(spark, group)}
        steps[r.step] = {
            "s": round(r.seconds, 2),
            "events_per_s_per_core": round(day_events / max(r.seconds, 1e-9) / cores, 1),
            "spark_jobs": figures["spark_jobs"],
            "spark_jobs_by_kind": figures["spark_jobs_by_kind"],
            "stages": figures["stages"],
            "jobs_busy_s": figures["jobs_busy_s"],
            "shuffle_mb": round(figures["shuffle_bytes"] / 2**20, 1),
            "spill_mb": round((figures["spill_disk_bytes"]) / 2**20, 1),
            "spill_memory_mb": round(figures["spill_memory_bytes"] / 2**20, 1),
            "input_mb": round(figures["input_bytes"] / 2**20, 1),
            "output_mb": round(figures["output_bytes"] / 2**20, 1),
            "peak_execution_memory_mb": round(figures["peak_execution_memory_bytes"] / 2**20, 1),
        }
    memory = _driver_memory(spark, heap_dump)
    floor = floors(spark, cfg, END)
    floor["sessions_bare_spark_s"] = bare_spark_sessions_s(spark, cfg, END)
    floor["ingest_validated_only_s"] = validated_ingest_s(spark, cfg, END)
    floor["ingest_deduplicated_s"] = deduplicated_ingest_s(spark, cfg, END)
    totals = manifest["rows"]
    out = {
        "advisors": advisors,
        "events_last_day": day_events,
        "events_per_advisor_day": round(day_events / advisors, 1),
        "history_days": history_days,
        "events_generated": totals["clickstream"],
        "setup": setup,
        "pipeline_s": round(pipeline_s, 1),
        "steps": steps,
        "driver_rss_mb": round(rss.peak["driver_jvm"] / 2**20, 1),
        "python_rss_mb": round(rss.peak["python"] / 2**20, 1),
        **memory,
        "driver_memory": driver_memory,
        "executor_memory_note": "local[*]: the executors are the driver JVM (driver_rss_mb)",
        "floors": floor,
        "ratios": {
            "ingest_vs_bare": _ratio(steps["ingest_clickstream"]["s"],
                                     floor["ingest_bare_read_write_s"]),
            "ingest_validated_only_vs_bare": _ratio(floor["ingest_validated_only_s"],
                                                    floor["ingest_bare_read_write_s"]),
            "ingest_deduplicated_vs_bare": _ratio(floor["ingest_deduplicated_s"],
                                                  floor["ingest_bare_read_write_s"]),
            "sessions_vs_bare_spark": _ratio(steps["build_sessions"]["s"],
                                             floor["sessions_bare_spark_s"]),
            "sessions_vs_duckdb": _ratio(steps["build_sessions"]["s"], floor["sessions_duckdb_s"]),
        },
    }  # fmt: skip
    spark.stop()
    return out


def _warm_up(
    spark: Any,
    saved: Path,
    place: Path,
    advisors: int,
    memory: dict[str, str],
    executor: Any,
    pipeline: Any,
) -> float:
    """Run the measured day once on a copy of the saved history at ``place`` (then removed):
    the JVM is then warm, the measured copy's tables untouched and not cached. Seconds taken."""
    from decisionlake.ops.pipeline import run_pipeline

    t0 = time.perf_counter()
    _restore_history(saved, place)
    settings = lake_settings(_config(place, advisors, **memory))
    must(run_pipeline(pipeline, [END], executor, settings=settings, max_retries=0,
                      parallelism=1), "warm-up day")  # fmt: skip
    spark.catalog.clearCache()
    shutil.rmtree(place, ignore_errors=True)
    seconds = round(time.perf_counter() - t0, 1)
    print(f"  warmed up on a copy of the history in {seconds:.0f}s", flush=True)
    return seconds


def _build_history(
    spark: Any,
    cfg: Any,
    spec: Any,
    landing: str | None,
    settings: list[str],
    executor: Any,
    pipeline: Any,
    history_days: int,
) -> dict[str, Any]:
    """Generate (or reuse ``landing``) and process the history: each day ingested, the
    builds once over the month. The setup's times, and the generator's manifest."""
    from decisionlake.dev.generate import generate
    from decisionlake.ops.pipeline import date_range, run_pipeline

    t0 = time.perf_counter()
    # A landing zone generated by an earlier run (ending END) is reused as it is.
    manifest = _reused_manifest(Path(landing), spec) if landing else generate(spark, cfg, spec)
    generate_s = time.perf_counter() - t0
    print(
        f"  generated {manifest['rows']['clickstream']:,} events in {generate_s:.0f}s", flush=True
    )
    history = date_range(spec.start_date, END - timedelta(days=1))
    t0 = time.perf_counter()
    must(run_pipeline(_subset(pipeline, ("ingest_crm",)), history[:1], executor, settings=settings,
                      max_retries=0), "history")  # fmt: skip
    ingest_s = must(run_pipeline(_subset(pipeline, INGEST_DAILY), history, executor,
                                 settings=settings, max_retries=0, parallelism=2),
                    "history ingest")  # fmt: skip
    print(f"  history ingested ({len(history)} days) in {ingest_s:.0f}s", flush=True)
    wide = [*settings, f"clickstream.lookback_days={history_days}"]
    build_s = must(run_pipeline(_subset(pipeline, BUILD_ONCE), history[-1:], executor,
                                settings=wide, max_retries=0), "history build")  # fmt: skip
    history_s = time.perf_counter() - t0
    print(f"  history built in bulk in {build_s:.0f}s", flush=True)
    times = {"generate_s": generate_s, "history_s": history_s, "history_ingest_s": ingest_s,
             "history_build_s": build_s}  # fmt: skip
    return {"manifest": manifest, "landing_reused": bool(landing),
            **{k: round(v, 1) for k, v in times.items()}}  # fmt: skip


def _ratio(value: float, floor: float) -> float:
    return round(value / max(floor, 1e-3), 2)


def scaling(scales: list[dict[str, Any]]) -> dict[str, Any]:
    """Smallest to largest: data factor, each step's time factor against data x 1.1, memory."""
    if len(scales) < 2:
        return {}
    by_size = sorted(scales, key=lambda scale: scale["events_last_day"])
    low, high = by_size[0], by_size[-1]
    data = high["events_last_day"] / low["events_last_day"]
    steps = {}
    for name, s in high["steps"].items():
        before = low["steps"].get(name, {}).get("s")
        if before:
            factor = s["s"] / before
            steps[name] = {"time_factor": round(factor, 2), "super_linear": factor > data * 1.1}
    return {
        "data_factor": round(data, 2),
        "pipeline_time_factor": round(high["pipeline_s"] / low["pipeline_s"], 2),
        "driver_rss_factor": round(high["driver_rss_mb"] / low["driver_rss_mb"], 3),
        "driver_heap_after_gc_factor": round(
            high["driver_heap_after_gc_mb"] / low["driver_heap_after_gc_mb"], 3
        ),
        # What the driver itself retains: the heap after GC once cached data, Delta's snapshot
        # cache and Python's garbage are released and the idle task threads have ended (all
        # executor-side on a cluster; see _driver_memory).
        "driver_heap_after_release_factor": round(
            high["driver_heap_after_release_mb"] / low["driver_heap_after_release_mb"], 3
        ),
        "steps": steps,
    }


def _print_scale(res: dict[str, Any]) -> None:
    print(f"\n{res['events_last_day']:,} events on the measured day, {res['advisors']:,} "
          f"advisors, {res['history_days']} days of history: pipeline {res['pipeline_s']}s, "
          f"driver RSS {res['driver_rss_mb']} MB (heap after GC "
          f"{res['driver_heap_after_gc_mb']} MB, {res['driver_heap_after_release_mb']} MB "
          f"with cached data released)")  # fmt: skip
    print(f"{'step':<22} {'s':>8} {'ev/s/core':>10} {'jobs':>5} {'stages':>6} "
          f"{'shuffle MB':>10} {'spill MB':>8}")  # fmt: skip
    for name, s in res["steps"].items():
        print(f"{name:<22} {s['s']:>8.2f} {s['events_per_s_per_core']:>10} {s['spark_jobs']:>5} "
              f"{s['stages']:>6} {s['shuffle_mb']:>10} {s['spill_mb']:>8}")  # fmt: skip
    print("floors:", json.dumps(res["floors"]), "ratios:", json.dumps(res["ratios"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-scale", description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="125000,1000000", help="events a day, per scale")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--warehouse-rows", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--driver-memory", default="14g", help="spark.driver.memory (local[*])")
    parser.add_argument(
        "--landing",
        help="landing zones generated by earlier runs, comma-separated, each used for the "
        "scale whose advisors it holds when that scale's history is built",
    )
    parser.add_argument(
        "--history-store",
        default=str(Path(__file__).resolve().parents[4] / ".cache" / "bench-history"),
        help="where each scale's history is built once and kept; a later run restores it and "
        "measures only the last day (default: the checkout's .cache/bench-history)",
    )
    parser.add_argument(
        "--rebuild-history", action="store_true", help="build every scale's history again"
    )
    parser.add_argument(
        "--history-only",
        action="store_true",
        help="build the histories that are missing and stop: set-up, which need not run alone "
        "as the measure must",
    )
    parser.add_argument(
        "--heap-dump", help="a folder for a heap dump of each scale's driver when measured"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="measure the day in a cold JVM (no warm-up run of the day on a copy first)",
    )
    parser.add_argument("--worker-warm-up", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-root", help=argparse.SUPPRESS)
    parser.add_argument("--worker-saved", help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_events:
        dump = (
            Path(args.heap_dump) / f"driver-{args.worker_events}.hprof" if args.heap_dump else None
        )
        res = run_one(args.worker_events, args.history_days, Path(args.worker_root),
                      driver_memory=args.driver_memory, landing=args.landing,
                      saved_history=Path(args.worker_saved),
                      heap_dump=dump, warm_up=args.worker_warm_up)  # fmt: skip
        Path(args.worker_result).write_text(json.dumps(res))
        return 0
    started = time.perf_counter()
    scales = []
    with bench_services():
        for events in [int(e) for e in args.events.split(",")]:
            place = Path(args.history_store) / f"{events}e-{args.history_days}d"
            root, saved = place / "run", place / "history"
            if args.rebuild_history:
                shutil.rmtree(saved, ignore_errors=True)
            print(f"scale: {events:,} events a day, {args.history_days} days of history ...",
                  flush=True)  # fmt: skip
            if not (saved / HISTORY_RECORD).exists():
                shutil.rmtree(root, ignore_errors=True)
                landing = _fitting_landing(args.landing, events)
                if landing:  # into the run's folder, so the saved history holds it
                    shutil.copytree(landing, root / "landing")
                built = _worker(events, args, root, saved, landing=landing and root / "landing")
                print(f"  history saved: {saved} ({built['setup']['history_s']:.0f}s)", flush=True)
            if args.history_only:
                continue
            scales.append(_worker(events, args, root, saved, warm_up=not args.cold))
            _print_scale(scales[-1])
            print(f"  lake: {root} (scripts/bench-training --root {root})", flush=True)
    if args.history_only:
        return 0
    warehouse: dict[str, Any] = {}
    if args.warehouse_rows:
        figures = Path(tempfile.mkdtemp(prefix="bench-scale-wh-")) / "warehouse.json"
        command = [sys.executable, "-m", "decisionlake.dev.bench.warehouse",
                   "--rows", str(args.warehouse_rows), "--json", str(figures)]  # fmt: skip
        done = subprocess.run(command)
        # The pipeline's figures are written whatever happens to this last part.
        warehouse = (json.loads(figures.read_text()) if done.returncode == 0
                     else {"error": f"bench-warehouse exited {done.returncode}"})  # fmt: skip
    report = {
        "machine": {"cores": os.cpu_count(), "memory_gb": round(_memory_gb(), 1),
                    "python": platform.python_version(), "platform": platform.platform()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": _git_commit(),
        "bench_s": round(time.perf_counter() - started, 1),
        "scales": scales,
        "scaling": scaling(scales),
        "floors": {"warehouse": warehouse} if warehouse else {},
        "training": {"status": "not measured in this run"},
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (out / "scale-latest.json", out / f"scale-{stamp}.json"):
        path.write_text(json.dumps(report, indent=1))
    print(f"\nscaling: {json.dumps(report['scaling'])}\nwritten: {out}/scale-latest.json")
    return 0


def _worker(
    events: int,
    args: Any,
    root: Path,
    saved: Path,
    *,
    landing: Path | None = None,
    warm_up: bool = False,
) -> dict[str, Any]:
    """``run_one`` in a process of its own (a fresh driver JVM); its result."""
    result = root / "result.json"
    subprocess.run([sys.executable, "-m", "decisionlake.dev.bench.scale",
                    "--worker-events", str(events), "--history-days", str(args.history_days),
                    "--driver-memory", args.driver_memory, "--worker-root", str(root),
                    *(["--heap-dump", args.heap_dump] if args.heap_dump else []),
                    *(["--worker-warm-up"] if warm_up else []),
                    "--worker-saved", str(saved), *(["--landing", str(landing)] if landing else []),
                    "--worker-result", str(result)], check=True)  # fmt: skip
    return json.loads(result.read_text())


def _fitting_landing(landings: str | None, events: int) -> Path | None:
    """Of the landing zones made earlier, the one holding the advisors of the ``events``
    scale."""
    advisors = max(events // EVENTS_PER_ADVISOR, 1)
    for landing in (landings or "").split(","):
        found = sorted(Path(landing).glob("_manifests/generate-*.json")) if landing else []
        if found and json.loads(found[-1].read_text())["summary"]["advisors"] == advisors:
            return Path(landing)
    return None


def _memory_gb() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


if __name__ == "__main__":
    sys.exit(main())
