"""The pipeline definition (``conf/pipeline.yaml``) and its local runner.

The same definition is rendered for Step Functions on EMR; locally, ``decisionlake pipeline
run`` executes its steps in dependency order for one date or a range of dates, each step either
in this process (one shared Spark session) or through ``spark-submit`` like on a cluster. A
failed step skips its dependants; the run stops after the date on which anything failed.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from decisionlake.config import ConfigError, default_conf_dir
from decisionlake.jobs import JOBS

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Step:
    """One job of the pipeline."""

    name: str
    job: str
    depends_on: tuple[str, ...] = ()
    retries: int = 0
    backoff_seconds: int = 60
    timeout_minutes: int = 60
    settings: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    """The job's own arguments (``--source web`` for ``ingest``)."""


@dataclass(frozen=True)
class PipelineDef:
    """A validated DAG of steps."""

    name: str
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def levels(self) -> list[list[Step]]:
        """Steps grouped so that each group only depends on earlier groups (parallel waves)."""
        return _waves(self.steps)

    def order(self) -> list[Step]:
        return [step for wave in self.levels() for step in wave]


_STEP_KEYS = {
    "name",
    "job",
    "depends_on",
    "retries",
    "backoff_seconds",
    "timeout_minutes",
    "settings",
    "args",
}


def load_pipeline(path: str | Path | None = None) -> PipelineDef:
    """Read and validate a pipeline definition.

    Raises:
        ConfigError: for unknown keys or jobs, missing or duplicate names, unknown
            dependencies and cycles, naming the offending step.
    """
    path = Path(path) if path else default_conf_dir() / "pipeline.yaml"
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("pipeline")
    if not isinstance(raw, dict) or not raw.get("steps"):
        raise ConfigError(f"{path}: expected pipeline.steps")
    defaults = raw.get("defaults", {}) or {}
    unknown_defaults = set(defaults) - (_STEP_KEYS - {"name", "job", "depends_on", "args"})
    if unknown_defaults:
        raise ConfigError(f"pipeline.defaults.{sorted(unknown_defaults)[0]}: unknown key")
    steps: list[Step] = []
    for i, item in enumerate(raw["steps"]):
        where = f"pipeline.steps[{i}]"
        unknown = set(item) - _STEP_KEYS
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
        if "name" not in item or "job" not in item:
            raise ConfigError(f"{where}: needs name and job")
        if item["job"] not in JOBS:
            raise ConfigError(
                f"{where}.job: unknown job {item['job']!r} (known: {', '.join(sorted(JOBS))})"
            )
        merged = {**defaults, **item}
        steps.append(
            Step(
                name=str(merged["name"]),
                job=str(merged["job"]),
                depends_on=tuple(merged.get("depends_on", []) or []),
                retries=int(merged.get("retries", 0)),
                backoff_seconds=int(merged.get("backoff_seconds", 60)),
                timeout_minutes=int(merged.get("timeout_minutes", 60)),
                settings=tuple(merged.get("settings", []) or []),
                args=tuple(str(a) for a in merged.get("args", []) or []),
            )
        )
    names = [s.name for s in steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"pipeline.steps: duplicate step name {duplicates[0]!r}")
    for s in steps:
        for dep in s.depends_on:
            if dep not in names:
                raise ConfigError(f"pipeline step {s.name!r} depends on unknown step {dep!r}")
    pipeline = PipelineDef(str(raw.get("name", "pipeline")), tuple(steps))
    if sum(len(w) for w in pipeline.levels()) != len(steps):
        raise ConfigError("pipeline.steps: dependency cycle")
    return pipeline


def _waves(steps: Sequence[Step]) -> list[list[Step]]:
    """Dependency waves; steps caught in a cycle are left out (the loader checks for that)."""
    done: set[str] = set()
    remaining = list(steps)
    waves: list[list[Step]] = []
    while remaining:
        wave = [s for s in remaining if set(s.depends_on) <= done]
        if not wave:
            break
        waves.append(wave)
        done |= {s.name for s in wave}
        remaining = [s for s in remaining if s.name not in done]
    return waves


@dataclass
class StepResult:
    """What happened to one step on one date."""

    run_date: date
    step: str
    status: str  # succeeded | failed | skipped
    attempts: int = 0
    seconds: float = 0.0
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


# (step, run date, extra --set values) -> (exit code, one-line reason, job summary)
Executor = Callable[[Step, date, Sequence[str]], tuple[int, str, dict[str, Any]]]


def job_argv(step: Step, run_date: date, env: str, settings: Sequence[str]) -> list[str]:
    argv = [*step.args, "--env", env, "--run-date", run_date.isoformat()]
    for value in (*step.settings, *settings):
        argv += ["--set", value]
    return argv


def driver_outcome(output: str, job: str) -> tuple[str, dict[str, Any]]:
    """From a spark-submit's output: the line that says why ``job`` failed (else the last
    line) and the summary of its ``job_succeeded`` JSON record (empty when there is none).

    spark-submit merges the Python driver's stderr, where the JSON log goes, into its stdout.
    """
    lines = [x for x in output.splitlines() if x.strip()]
    reason = next((x for x in reversed(lines) if f"{job} failed" in x), lines[-1] if lines else "")
    for line in reversed(lines):
        if line.startswith("{") and '"job_succeeded"' in line:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("job") == job:
                return reason[:500], dict(record.get("summary") or {})
    return reason[:500], {}


def spark_submit_executor(env: str) -> Executor:
    """Run each step as ``scripts/spark-submit jobs/<job>.py ...`` (what a cluster does)."""

    def execute(
        step: Step, run_date: date, settings: Sequence[str]
    ) -> tuple[int, str, dict[str, Any]]:
        command = [str(REPO / "scripts" / "spark-submit"), str(REPO / "jobs" / f"{step.job}.py"),
                   *job_argv(step, run_date, env, settings)]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=step.timeout_minutes * 60
            )
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {step.timeout_minutes} min", {}
        reason, summary = driver_outcome(done.stdout + done.stderr, step.job)
        return done.returncode, reason if done.returncode else "", summary

    return execute


def in_process_executor(env: str) -> Executor:
    """Run each step's job in this process (one Spark session for all steps)."""
    from decisionlake.core.runtime import run_module

    def run(step: Step, run_date: date, settings: Sequence[str]) -> tuple[int, str, dict[str, Any]]:
        module = importlib.import_module(JOBS[step.job])
        return run_module(module, job_argv(step, run_date, env, settings))

    return run


def job_counting_executor(
    executor: Executor, spark: Any, counts: dict[tuple[date, str], int]
) -> Executor:
    """``executor`` (in process) with each step's Spark jobs grouped as ``<date>:<step>`` and
    counted into ``counts`` when the step ends.

    Job counts are deterministic for given data, so a test can hold each step to a budget
    (time is not). Read from the status tracker: no UI needed. Threads a step starts inherit
    its group (see ``lake.run_concurrently``), so their jobs count too.
    """

    def run(step: Step, run_date: date, settings: Sequence[str]) -> tuple[int, str, dict[str, Any]]:
        group = f"{run_date}:{step.name}"
        spark.sparkContext.setJobGroup(group, step.name)
        try:
            return executor(step, run_date, settings)
        finally:
            tracker = spark.sparkContext.statusTracker()
            counts[(run_date, step.name)] = len(tracker.getJobIdsForGroup(group))
            spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)

    return run


def run_pipeline(
    pipeline: PipelineDef,
    dates: Sequence[date],
    executor: Executor,
    *,
    settings: Sequence[str] = (),
    progress: Callable[[StepResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_retries: int | None = None,
    parallelism: int = 1,
) -> list[StepResult]:
    """Run every step for each date in order; stop after a date on which a step failed.

    Within a date, up to ``parallelism`` steps whose dependencies succeeded run at the same
    time (as the state machine's branches do); a step whose dependency did not succeed is
    skipped. ``max_retries`` caps the definition's retries (0 for interactive runs that
    should fail fast). Results are in the definition's order.
    """
    results: list[StepResult] = []
    for run_date in dates:
        day = _run_date(pipeline, run_date, executor, settings, progress, sleep, max_retries,
                        max(1, parallelism))  # fmt: skip
        results += day
        if any(r.status != "succeeded" for r in day):
            break
    return results


def _run_date(
    pipeline: PipelineDef,
    run_date: date,
    executor: Executor,
    settings: Sequence[str],
    progress: Callable[[StepResult], None] | None,
    sleep: Callable[[float], None],
    max_retries: int | None,
    parallelism: int,
) -> list[StepResult]:
    order = pipeline.order()
    done: dict[str, StepResult] = {}
    running: dict[Future[StepResult], Step] = {}

    def finish(result: StepResult) -> None:
        done[result.step] = result
        if progress:
            progress(result)

    with ThreadPoolExecutor(parallelism, thread_name_prefix="step") as pool:
        while len(done) < len(order):
            for step in order:
                if step.name in done or step.name in {r.name for r in running.values()}:
                    continue
                if any(d not in done for d in step.depends_on):
                    continue  # a dependency is still to run
                blocked = [d for d in step.depends_on if done[d].status != "succeeded"]
                if blocked:
                    why = f"dependency {blocked[0]} did not succeed"
                    finish(StepResult(run_date, step.name, "skipped", reason=why))
                    continue
                if len(running) >= parallelism:
                    break
                if max_retries is not None:
                    step = replace(step, retries=min(step.retries, max_retries))
                future = pool.submit(_attempt, step, run_date, executor, settings, sleep)
                running[future] = step
            if not running:
                continue  # only skips were recorded this round
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                step = running.pop(future)
                try:
                    finish(future.result())
                except Exception as exc:  # the executor itself broke (not the job): a failure
                    why = f"{type(exc).__name__}: {exc}"
                    finish(StepResult(run_date, step.name, "failed", 1, reason=why[:500]))
    return [done[step.name] for step in order]


def _attempt(
    step: Step,
    run_date: date,
    executor: Executor,
    settings: Sequence[str],
    sleep: Callable[[float], None],
) -> StepResult:
    started = time.perf_counter()
    reason = ""
    for attempt in range(1, step.retries + 2):
        code, reason, summary = executor(step, run_date, settings)
        if code == 0:
            return StepResult(run_date, step.name, "succeeded", attempt,
                              time.perf_counter() - started, summary=summary)  # fmt: skip
        if code == 2:  # usage or configuration error: retrying cannot help
            break
        if attempt <= step.retries:
            sleep(step.backoff_seconds * 2 ** (attempt - 1))
    return StepResult(run_date, step.name, "failed", attempt, time.perf_counter() - started,
                      reason=reason or f"exit code {code}")  # fmt: skip


def date_range(first: date, last: date) -> list[date]:
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def format_summary(results: Sequence[StepResult]) -> str:
    """A table people can read, ending with the verdict."""
    lines = [f"{'date':<10}  {'step':<22} {'status':<9} {'tries':>5} {'seconds':>8}  reason"]
    for r in results:
        lines.append(
            f"{r.run_date}  {r.step:<22} {r.status:<9} {r.attempts:>5} {r.seconds:8.1f}  {r.reason}"
        )
    failed = [r for r in results if r.status == "failed"]
    verdict = (f"FAILED: {failed[0].step} on {failed[0].run_date}: {failed[0].reason}"
               if failed else f"OK: {len(results)} steps succeeded")  # fmt: skip
    return "\n".join([*lines, verdict])


def main_exit_code(results: Sequence[StepResult]) -> int:
    return 1 if any(r.status != "succeeded" for r in results) else 0
