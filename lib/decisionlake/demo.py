"""``make demo``: local services up, one synthetic day generated, the pipeline run on it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from decisionlake import services
from decisionlake.config import load_config
from decisionlake.generate import build_spec, generate
from decisionlake.jobs import ingest_clickstream
from decisionlake.runtime import build_context, job_parser


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; prints a short human summary and returns an exit code."""
    started = time.perf_counter()
    print("== decisionlake demo ==", flush=True)
    state = services.start_stack(with_mlflow=True)
    services.apply_env(state)
    env = state["env"]
    print(
        f"services: S3/DynamoDB/SecretsManager/SNS (moto) {env['DL_S3_ENDPOINT']}, "
        f"PostgreSQL {env['DL_PG_URL']}, MLflow {env.get('MLFLOW_TRACKING_URI')}"
    )

    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    spec = build_spec(
        cfg, end_date=args.run_date, days=args.days, advisors=args.advisors, seed=None
    )
    job_args = job_parser("demo").parse_args(
        [
            "--env",
            args.env,
            "--run-date",
            args.run_date.isoformat(),
            *[part for o in args.overrides for part in ("--set", o)],
        ]
    )
    if args.config:
        job_args.config = args.config
    ctx = build_context("ingest_clickstream", job_args)

    t0 = time.perf_counter()
    gen = generate(ctx.spark, cfg, spec)
    print(
        f"generated {spec.days} day(s) ending {args.run_date} for {spec.advisors} advisors "
        f"({spec.visitors} visitors): {json.dumps(gen['rows'])} "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    results: list[dict[str, Any]] = []
    day = spec.start_date
    while day <= args.run_date:
        ctx.run_date = day
        t0 = time.perf_counter()
        summary = ingest_clickstream.run(ctx)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(summary)
        day = day.fromordinal(day.toordinal() + 1)

    print("\ningest_clickstream")
    for s in results:
        print(
            f"  {s['run_date']}: read {s['rows_in']}, accepted {s['accepted']} "
            f"(new {s['inserted']}, duplicates {s['duplicates_in_batch']}, "
            f"already present {s['already_present']}), quarantined {s['quarantined']} "
            f"{s['quarantined_by_reason']} in {s['seconds']}s"
        )
    print("\ntables written")
    for name, uri in results[-1]["tables"].items():
        print(f"  {name:<32} {uri}")
    print(
        f"\ndemo finished in {time.perf_counter() - started:.1f}s "
        "(services keep running: `make services-stop` ends them)"
    )
    sys.stdout.flush()
    return 0
