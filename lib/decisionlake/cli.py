"""``decisionlake`` command line: tables, run, generate, services, pipeline, infra, demo."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from decisionlake.config import ConfigError, load_config


def _cmd_tables(args: argparse.Namespace) -> int:
    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    catalog = cfg.catalog()
    if args.json:
        print(json.dumps(catalog, indent=2))
    else:
        width = max(map(len, catalog))
        for name, uri in catalog.items():
            print(f"{name:<{width}}  {uri}")
    return 0


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    from decisionlake.jobs import JOBS

    asked = args.job in ("-h", "--help") or (args.job is None and {"-h", "--help"} & set(rest))
    if asked or args.job is None:
        print(_run_usage(JOBS, _source_names()), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    if args.job not in JOBS:
        print(f"unknown job {args.job!r}; known: {', '.join(sorted(JOBS))}", file=sys.stderr)
        return 2
    return int(importlib.import_module(JOBS[args.job]).main(rest))


def _source_names() -> list[str]:
    """The sources the base configuration enables (an environment may add more)."""
    try:
        return sorted(load_config("local").ingest)
    except ConfigError:
        return []


def _run_usage(jobs: dict[str, str], sources: list[str]) -> str:
    """``decisionlake run --help``: the jobs and the options every job takes."""
    named = {"ingest": f"ingest --source SOURCE  (sources: {', '.join(sources)})"}
    lines = [
        "usage: decisionlake run JOB --env ENV --run-date YYYY-MM-DD [--set KEY.PATH=VALUE ...]",
        "                          [--config DIR] [--run-id ID]",
        "",
        "jobs:",
        *[f"  {named.get(name, name)}" for name in sorted(jobs)],
        "",
        "options every job takes:",
        "  --env ENV              configuration environment (conf/<env>), default local",
        "  --run-date YYYY-MM-DD  the day the job processes (required)",
        "  --set KEY.PATH=VALUE   override one configuration value (repeatable)",
        "  --config DIR           configuration folder (default: conf/)",
        "  --run-id ID            defaults to a new UUID",
        "",
        "decisionlake run JOB --help shows the job's own options.",
    ]
    return "\n".join(lines)


def _cmd_infra(args: argparse.Namespace) -> int:
    from decisionlake.ops.orchestration.cfn import render_template
    from decisionlake.ops.pipeline import load_pipeline

    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    text = json.dumps(render_template(cfg, load_pipeline()), indent=1, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from decisionlake.core.spark import get_spark
    from decisionlake.dev.generate import build_spec, generate

    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    spec = build_spec(
        cfg, end_date=args.end_date, days=args.days, advisors=args.advisors, seed=args.seed
    )
    summary = generate(get_spark(cfg, "decisionlake-generate"), cfg, spec)
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_services(args: argparse.Namespace) -> int:
    from decisionlake.dev import services

    if args.action in ("start", "up"):
        from decisionlake.dev.cluster import ClusterError

        try:
            state = services.start_stack(with_mlflow=not args.no_mlflow, with_cluster=args.cluster)
        except ClusterError as exc:
            print(f"services start: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(state["env"], indent=1))
    elif args.action in ("stop", "down"):
        services.stop_stack()
        print("services stopped")
    else:
        print(json.dumps(services.read_state(), indent=1))
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    from decisionlake.ops import pipeline as pl

    definition = pl.load_pipeline(args.file)
    if args.action == "render":
        from decisionlake.ops.orchestration.asl import DeploySettings, render_state_machine

        machine = render_state_machine(
            definition, target=args.target, transient=args.transient,
            settings=DeploySettings(env=args.env),
        )  # fmt: skip
        text = json.dumps(machine, indent=2)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0
    if args.action == "graph":
        for n, wave in enumerate(definition.levels(), start=1):
            steps = ", ".join(
                f"{s.name}" + (f" (after {', '.join(s.depends_on)})" if s.depends_on else "")
                for s in wave
            )
            print(f"wave {n}: {steps}")
        return 0
    if args.run_date:
        dates = [args.run_date]
    elif args.date_from and args.date_to:
        dates = pl.date_range(args.date_from, args.date_to)
    else:
        print("pipeline run needs --run-date or --from and --to", file=sys.stderr)
        return 2
    if args.submit == "cluster":
        from decisionlake.dev.cluster import ClusterError, stack_executor

        try:
            executor = stack_executor(args.env, release_prefix=args.release)
        except ClusterError as exc:
            print(f"pipeline run: {exc}", file=sys.stderr)
            return 2
    else:
        in_process = args.in_process or args.submit == "in-process"
        executor = (pl.in_process_executor if in_process else pl.spark_submit_executor)(args.env)

    def progress(result: pl.StepResult) -> None:
        print(f"  {result.run_date} {result.step:<22} {result.status:<9} "
              f"{result.seconds:6.1f}s {result.reason}", flush=True)  # fmt: skip

    results = pl.run_pipeline(
        definition,
        dates,
        executor,
        settings=args.overrides,
        progress=progress,
        max_retries=args.retries,
        parallelism=args.parallel,
    )
    print(pl.format_summary(results))
    if results:
        import uuid

        from decisionlake.core.spark import get_spark
        from decisionlake.ops.report import write_report

        cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
        report = write_report(get_spark(cfg, "decisionlake-report"), cfg, results,
                              run_id=uuid.uuid4().hex)  # fmt: skip
        print(f"run report: {report}")
    return pl.main_exit_code(results)


def _cmd_demo(args: argparse.Namespace) -> int:
    from decisionlake.dev.demo import run_demo

    return run_demo(args)


def _iso_date(text: str) -> date:
    return date.fromisoformat(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decisionlake", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_env(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--env", default="local")
        p.add_argument("--config", default=None)
        p.add_argument("--set", dest="overrides", action="append", default=[])
        return p

    tables = with_env(sub.add_parser("tables", help="print the table catalog"))
    tables.add_argument("--json", action="store_true")

    run = sub.add_parser(
        "run", help="run one job: decisionlake run NAME --env E --run-date D", add_help=False
    )
    run.add_argument("job", nargs="?", default=None)

    gen = with_env(sub.add_parser("generate", help="write synthetic data to the landing zone"))
    gen.add_argument("--days", type=int, default=None)
    gen.add_argument("--advisors", type=int, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--end-date", type=_iso_date, default=date.today() - timedelta(days=1))

    svc = sub.add_parser("services", help="start/stop/status of the local service stand-ins")
    svc.add_argument("action", choices=["start", "up", "stop", "down", "status"])
    svc.add_argument("--no-mlflow", action="store_true")
    svc.add_argument(
        "--cluster", action="store_true",
        help="also start the local Spark standalone cluster (one master, two workers)",
    )  # fmt: skip

    pipe = with_env(sub.add_parser("pipeline", help="run or show the daily pipeline"))
    pipe.add_argument("action", choices=["run", "graph", "render"])
    pipe.add_argument("--target", choices=["emr", "emr-serverless"], default="emr")
    pipe.add_argument("--transient", action="store_true", help="create and terminate a cluster")
    pipe.add_argument("--out", default=None, help="write the rendered state machine here")
    pipe.add_argument("--run-date", type=_iso_date, default=None)
    pipe.add_argument("--from", dest="date_from", type=_iso_date, default=None)
    pipe.add_argument("--to", dest="date_to", type=_iso_date, default=None)
    pipe.add_argument("--file", default=None, help="pipeline definition (conf/pipeline.yaml)")
    pipe.add_argument("--retries", type=int, default=None, help="cap retries per step")
    pipe.add_argument(
        "--parallel", type=int, default=2, help="steps whose dependencies are done run at once"
    )
    pipe.add_argument(
        "--in-process", action="store_true", help="run jobs in this process, not spark-submit"
    )
    pipe.add_argument(
        "--submit", choices=["local", "in-process", "cluster"], default="local",
        help="local: scripts/spark-submit per step; cluster: the deployed release onto the "
        "local cluster (`services start --cluster`, then package and deploy), like EMR",
    )  # fmt: skip
    pipe.add_argument(
        "--release",
        default="releases/current",
        help="with --submit cluster: the release's prefix in the artifacts bucket",
    )

    sub.add_parser(
        "package", help="build a versioned release (wheel, jobs, Python env)", add_help=False
    )
    sub.add_parser("deploy", help="upload a release to the artifacts bucket", add_help=False)
    sub.add_parser(
        "erase", help="remove one person from every table (right to erasure)", add_help=False
    )
    infra = with_env(sub.add_parser("infra", help="render the CloudFormation template"))
    infra.add_argument("action", choices=["render"])
    infra.add_argument("--out", default=None, help="write the template here (default stdout)")

    demo = with_env(sub.add_parser("demo", help="generate a day and run the pipeline on it"))
    demo.add_argument("--run-date", type=_iso_date, default=date(2026, 11, 24))
    demo.add_argument("--advisors", type=int, default=None)
    demo.add_argument("--days", type=int, default=6)
    demo.add_argument("--parallel", type=int, default=2, help="independent steps at once")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; a closed output pipe (``| head``) ends it quietly."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "erase":
        from decisionlake.ops.erase import main as erase_main

        return erase_main(rest)
    if args.command in ("package", "deploy"):
        from decisionlake.ops import release

        return (release.main_package if args.command == "package" else release.main_deploy)(rest)
    if args.command != "run" and rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        if args.command == "tables":
            return _cmd_tables(args)
        if args.command == "run":
            return _cmd_run(args, rest)
        if args.command == "generate":
            return _cmd_generate(args)
        if args.command == "services":
            return _cmd_services(args)
        if args.command == "pipeline":
            return _cmd_pipeline(args)
        if args.command == "infra":
            return _cmd_infra(args)
        return _cmd_demo(args)
    except ConfigError as exc:
        print(f"decisionlake: ConfigError: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
