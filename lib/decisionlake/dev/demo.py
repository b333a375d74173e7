"""``make demo``: local services up, synthetic data generated, the daily pipeline run on it."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from decisionlake.config import load_config
from decisionlake.core.spark import get_spark
from decisionlake.dev import services
from decisionlake.dev.generate import build_spec, generate
from decisionlake.io import lake
from decisionlake.io.row_counts import delta_rs_row_count
from decisionlake.ops.pipeline import (
    Step,
    StepResult,
    date_range,
    format_summary,
    in_process_executor,
    load_pipeline,
    main_exit_code,
    run_pipeline,
)


def _one_line(name: str, summary: dict[str, Any]) -> str:
    if "rows_in" in summary:
        return (
            f"read {summary['rows_in']}, accepted {summary['accepted']} (new {summary['inserted']}"
            f", duplicates {summary['duplicates_in_batch']}, already present "
            f"{summary['already_present']}), quarantined {summary['quarantined']} "
            f"{summary['quarantined_by_reason'] or ''}"
        )
    if name == "build_sessions":
        w = summary["writes"]
        return (
            f"window {summary['window'][0]}..{summary['window'][1]}: "
            f"{summary['events_in_window']} human events, "
            f"{summary['bot_events_in_window']} bot events; sessions of "
            f"{', '.join(w['silver.sessions']['datesReplaced']) or 'no date'} rewritten "
            f"({w['silver.sessions'].get('numOutputRows', 0)} rows)"
        )
    if name == "build_text_features":
        refit = "fitted" if summary["refit"] else "reused"
        return (
            f"text pipeline {summary['model_version']} ({refit}), "
            f"{summary['notes_scored']} notes scored, {summary['advisors']} advisors"
        )
    if name == "check_quality":
        return f"{summary['rules']} expectations, {summary['failed']} failed (see ops.dq_results)"
    if name == "score":
        done = {m: v.get("rows", v.get("skipped")) for m, v in summary["models"].items()}
        return f"scored: {done}"
    if name in ("export_scores", "export_call_list"):
        return f"{summary['exported']} rows exported {summary.get('reason', '')}"
    if name == "build_call_list":
        if not summary.get("targeted"):
            return summary.get("reason", "")
        return f"{summary['contact']} to call, {summary['holdout']} held out (control group)"
    if name == "monitor":
        done = {m: v.get("score_band", v.get("skipped")) for m, v in summary["models"].items()}
        return f"score drift {done}, alerts {len(summary['alerts'])}"
    if name == "publish":
        return ", ".join(
            f"{t} -> {v.get('glue_table', v.get('skipped'))}"
            for t, v in summary["published"].items()
        )
    if name == "build_identity":
        return f"{summary['visitors_linked']} visitors linked {summary['by_resolution']}"
    return f"{summary.get('rows')} rows, {summary.get('advisors_active')} active"


def _log_to_mlflow(
    env: dict[str, str], args: argparse.Namespace, timings: dict[str, float], rows: dict[str, int]
) -> str | None:
    """Record the demo run (row counts, step timings) on the local MLflow server."""
    uri = env.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("decisionlake-demo")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment("decisionlake-demo")
    )
    run = client.create_run(experiment_id, run_name=f"demo-{args.run_date}")
    run_id = run.info.run_id
    client.log_param(run_id, "run_date", args.run_date.isoformat())
    client.log_param(run_id, "env", args.env)
    for key, value in {**{f"seconds_{k}": v for k, v in timings.items()},
                       **{f"rows_{k}": v for k, v in rows.items()}}.items():  # fmt: skip
        client.log_metric(run_id, key.replace(".", "_"), value)
    client.set_terminated(run_id)
    return f"{uri}/#/experiments/{experiment_id}/runs/{run_id}"


def _train_and_publish(
    args: argparse.Namespace, executor: Any, log_path: Any, extra_results: list[StepResult]
) -> tuple[float, dict[str, Any] | None]:
    """Train the models on the backfilled history, then score, export and publish the last day."""
    import psycopg2

    started = time.perf_counter()
    print("\nmodels: train on the history, then score, export and publish the last day",
          flush=True)  # fmt: skip
    outputs: dict[str, dict[str, Any]] = {}
    jobs = ("train_models", "score", "build_call_list", "export_scores", "export_call_list",
            "publish", "monitor")  # fmt: skip
    for job in jobs:
        t0 = time.perf_counter()
        with log_path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
            code, reason, summary = executor(Step(job, job), args.run_date, args.overrides)
        if code:
            print(f"  {job} FAILED in {time.perf_counter() - t0:.1f}s: {reason}")
            return time.perf_counter() - started, None
        outputs[job] = summary
        extra_results.append(
            StepResult(args.run_date, job, "succeeded", 1, time.perf_counter() - t0, "", summary)
        )
        print(f"  {args.run_date} {job:<20} succeeded {time.perf_counter() - t0:5.1f}s", flush=True)
        if job == "train_models":
            for name, m in summary["models"].items():
                shown = {k: v for k, v in m["metrics"].items() if k != "rows"}
                print(f"    {name}: {m['estimator']} {m['params']}\n      metrics {shown}\n"
                      f"      v{m['version']} {m['role'].upper()}: {m['decision']}")  # fmt: skip
                for check in m.get("checks") or []:
                    verdict = "pass" if check["passed"] else "FAIL"
                    print(f"        {verdict:<4} {check['check']:<18} {check['detail']}")
                for seg in m.get("segment_profiles") or []:
                    profile = ", ".join(
                        f"{k} {seg[k]}"
                        for k in ("sessions_30d", "downloads_30d", "text_notes_90d")
                        if k in seg
                    )
                    print(f"      segment {seg['segment']}: {seg['advisors']} advisors, {profile}")
    for job in ("export_scores", "export_call_list"):
        export = outputs[job]
        staged = f"{export.get('files')} staged file(s), {export.get('staged_bytes')} bytes"
        print(f"    {job}: {export['exported']} rows to {export.get('target')} ({staged})")
    with psycopg2.connect(os.environ["DL_PG_URL"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT model_name, count(*) FROM analytics.advisor_scores WHERE as_of_date = %s "
            "GROUP BY model_name ORDER BY 1",
            (args.run_date,),
        )
        by_model = dict(cur.fetchall())
        cur.execute(
            "SELECT count(*) FROM analytics.call_list WHERE run_date = %s", (args.run_date,)
        )
        call_list = int(cur.fetchone()[0])
    return time.perf_counter() - started, {
        "rows": sum(by_model.values()),
        "by_model": by_model,
        "call_list": call_list,
        "call_list_summary": outputs["build_call_list"],
    }


def _print_call_list(summary: dict[str, Any]) -> None:
    """The top of the call list with reasons, then the uplift line."""
    if not summary.get("targeted"):
        print(f"\ncall list: {summary.get('reason')}")
        return
    print(f"\ncall list for {summary['run_date']}: {summary['contact']} advisors to call, "
          f"{summary['holdout']} held out as the control group (top 5):")  # fmt: skip
    for row in summary["top"]:
        reasons = "; ".join(row["reasons"] or []) or "no reasons"
        print(f"  {row['rank']:>3}. {row['advisor_id']}  score {row['score']:.3f}  "
              f"[{row['segment_name'] or 'no segment'}]  because {reasons}")  # fmt: skip
    uplift = summary.get("uplift") or {}
    if uplift.get("uplift_low") is None:
        arms = f"contacted {uplift.get('contacted', 0)}, held out {uplift.get('held_out', 0)}"
        print(f"  uplift: {uplift.get('conclusion', 'too few matured outcomes')} ({arms})")
    else:
        print(f"  uplift: {uplift['uplift']:+.3f} ({uplift['uplift_low']:+.3f} .. "
              f"{uplift['uplift_high']:+.3f}), {uplift['conclusion']}")  # fmt: skip


def _deploy_for_cluster(env: str, state: dict[str, Any]) -> Any:
    """Package this checkout, deploy it to the artifacts bucket, submit every step from it."""
    from decisionlake.dev.cluster import stack_executor
    from decisionlake.ops import release

    t0 = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="decisionlake-release-"))
    manifest = release.package(out)
    deployed = release.deploy(out / manifest["release"], bucket=services.BUCKETS[2],
                              endpoint=state["env"]["DL_S3_ENDPOINT"])  # fmt: skip
    print(f"release {manifest['release']} deployed to {deployed['uri']} "
          f"({time.perf_counter() - t0:.1f}s); Spark cluster {state['cluster']['master_url']} "
          "(every step a spark-submit of it, like an EMR step)", flush=True)  # fmt: skip
    return stack_executor(env)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; prints a short human summary and returns an exit code."""
    started = time.perf_counter()
    print("== decisionlake demo ==", flush=True)
    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    on_cluster = cfg.spark.mode == "cluster"
    state = services.start_stack(with_mlflow=True, with_cluster=on_cluster)
    services.apply_env(state)
    env = state["env"]
    print(
        f"services: S3/DynamoDB/SecretsManager/SNS (moto) {env['DL_S3_ENDPOINT']}, "
        f"PostgreSQL {env['DL_PG_URL']}, MLflow {env.get('MLFLOW_TRACKING_URI')}"
    )

    if on_cluster:
        executor = _deploy_for_cluster(args.env, state)
        # This process generates the landing zone and reads the tables: a local session on
        # the same S3 buckets (local-cluster keeps local-s3's paths).
        session_cfg = load_config("local-s3", conf_dir=args.config, overrides=args.overrides)
    else:
        executor, session_cfg = in_process_executor(args.env), cfg
    spec = build_spec(
        cfg, end_date=args.run_date, days=args.days, advisors=args.advisors, seed=None
    )
    spark = get_spark(session_cfg, "decisionlake-demo")
    spark.sparkContext.setLogLevel("ERROR")  # the demo prints its own progress
    t0 = time.perf_counter()
    gen = generate(spark, cfg, spec)
    print(
        f"generated {spec.days} day(s) ending {args.run_date} for {spec.advisors} advisors "
        f"({spec.visitors} visitors): {json.dumps(gen['rows'])} "
        f"in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    definition = load_pipeline()
    dates = date_range(spec.start_date, args.run_date)
    log_path = services.state_dir() / "demo-log.jsonl"
    print(f"\npipeline {definition.name} for {dates[0]}..{dates[-1]} "
          f"(structured logs: {log_path})", flush=True)  # fmt: skip
    timings: dict[str, float] = {}
    summaries: dict[str, dict[str, Any]] = {}

    def progress(result: StepResult) -> None:
        timings[result.step] = timings.get(result.step, 0.0) + result.seconds
        summaries[result.step] = result.summary
        detail = _one_line(result.step, result.summary) if result.summary else result.reason
        print(f"  {result.run_date} {result.step:<20} {result.status:<9} {result.seconds:5.1f}s  "
              f"{detail}", file=sys.__stdout__, flush=True)  # fmt: skip

    pipeline_started = time.perf_counter()
    with log_path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        results = run_pipeline(
            definition, dates, executor, settings=args.overrides,
            progress=progress, max_retries=0, parallelism=args.parallel,
        )  # fmt: skip
    pipeline_seconds = time.perf_counter() - pipeline_started
    if main_exit_code(results):
        print(format_summary(results))
        return 1
    extra: list[StepResult] = []
    models_seconds, scored = _train_and_publish(args, executor, log_path, extra)
    if scored is None:
        return 1
    print("\ntopics of the text pipeline (top terms)")
    for topic, terms in sorted(summaries["build_text_features"]["topics"].items()):
        print(f"  topic {topic}: {', '.join(terms[:8])}")
    print("\ntables (rows)")
    table_rows: dict[str, int] = {}
    for name, uri in cfg.catalog().items():
        if lake.delta_table_exists(spark, uri):
            table_rows[name] = lake.read_delta(spark, uri).count()
            print(f"  {name:<32} {table_rows[name]:>9}  {uri}")
    bronze = cfg.table_uri("bronze.clickstream")
    independent = delta_rs_row_count(bronze, cfg.storage)
    agrees = "agrees" if independent["rows"] == table_rows["bronze.clickstream"] else "DISAGREES"
    print(
        f"\nindependent reader (delta-rs) on bronze.clickstream: {independent['rows']} rows "
        f"at version {independent['version']} ({agrees} with Spark)"
    )
    print(
        f"\nwarehouse (PostgreSQL {env['DL_PG_URL']}): analytics.advisor_scores holds "
        f"{scored['rows']} rows for {args.run_date} (read back with psycopg): {scored['by_model']}"
        f"; analytics.call_list holds {scored['call_list']} advisors to call"
    )
    from decisionlake.ops.report import write_report

    report = write_report(spark, cfg, [*results, *extra], run_id=uuid.uuid4().hex)
    print(f"\nrun report: {report}")
    from decisionlake.ops.business_report import write_business_report

    print(f"business report: {write_business_report(spark, cfg, args.run_date)}")
    _log_to_mlflow(env, args, timings, table_rows)  # MLflow prints the run's address
    print(
        f"\npipeline {pipeline_seconds:.1f}s, models {models_seconds:.1f}s, "
        f"demo {time.perf_counter() - started:.1f}s "
        "(services keep running: `make services-stop` ends them)"
    )
    # The decision this is all for, last: whom to call and whether calling works.
    _print_call_list(scored["call_list_summary"])
    sys.stdout.flush()
    return 0
