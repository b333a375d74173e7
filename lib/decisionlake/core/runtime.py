"""The job contract: argument parsing, config, session, structured logs, exit codes.

Every job is ``main(argv) -> int`` built on :func:`run_job`, usable from ``spark-submit
jobs/<name>.py --env ENV --run-date YYYY-MM-DD [--set key=value ...]``, from ``decisionlake run``
and from a notebook (``main([...])`` or ``run(JobContext)`` directly).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from decisionlake.config import AppConfig, ConfigError, load_config
from decisionlake.core.jars import MissingJarsError
from decisionlake.core.logs import JobLogger

JobBody = Callable[["JobContext"], dict[str, Any]]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass
class JobContext:
    """What a job body receives: validated config, session, run identity and logger."""

    cfg: AppConfig
    spark: SparkSession
    run_date: date
    run_id: str
    log: JobLogger
    args: argparse.Namespace


SCHEDULED = "scheduled:"


def _run_date(text: str) -> date:
    """``YYYY-MM-DD``, or ``scheduled:<ISO time>`` (a schedule's firing time): the day before."""
    try:
        if text.startswith(SCHEDULED):
            fired = datetime.fromisoformat(text.removeprefix(SCHEDULED).replace("Z", "+00:00"))
            return fired.astimezone(UTC).date() - timedelta(days=1)
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--run-date {text!r}: expected YYYY-MM-DD or scheduled:<ISO time>"
        ) from None


def job_parser(name: str, description: str | None = None) -> argparse.ArgumentParser:
    """The common argument parser; jobs may add their own arguments to it."""
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--env", default="local", help="configuration environment (conf/<env>)")
    parser.add_argument("--config", default=None, help="configuration folder (default: conf/)")
    parser.add_argument("--run-date", required=True, type=_run_date, help="YYYY-MM-DD")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override one configuration value (repeatable)",
    )
    parser.add_argument("--run-id", default=None, help="defaults to a new UUID")
    return parser


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(message)


def build_context(
    name: str, args: argparse.Namespace, *, spark: SparkSession | None = None
) -> JobContext:
    """Load config and get the session for parsed job arguments."""
    from decisionlake.core.spark import get_spark

    cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
    run_id = args.run_id or uuid.uuid4().hex
    log = JobLogger(name, run_id)
    session = spark or get_spark(cfg, app_name=f"decisionlake-{name}")
    return JobContext(cfg, session, args.run_date, run_id, log, args)


def execute(
    name: str,
    argv: Sequence[str] | None,
    body: JobBody,
    *,
    parser: argparse.ArgumentParser | None = None,
    spark: SparkSession | None = None,
) -> tuple[int, str, dict[str, Any]]:
    """Run a job body; returns (exit code, one-line reason if it failed, summary)."""
    parser = parser or job_parser(name)
    parser.__class__ = _Parser
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except _ArgumentError as exc:
        return EXIT_USAGE, f"{name}: usage error: {exc}", {}
    try:
        ctx = build_context(name, args, spark=spark)
    except (ConfigError, MissingJarsError) as exc:
        return EXIT_USAGE, f"{name}: {type(exc).__name__}: {exc}", {}
    ctx.log.event("job_start", env=ctx.cfg.env, run_date=ctx.run_date.isoformat())
    try:
        summary = body(ctx)
    except ConfigError as exc:  # found while running: still the spec's or the input's fault
        reason = " ".join(str(exc).split())
        ctx.log.event("job_failed", level="ERROR", error=type(exc).__name__, reason=reason[:2000])
        return EXIT_USAGE, f"{name}: {type(exc).__name__}: {reason[:500]}", {}
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        hint = next_step(exc, ctx.cfg.env)
        ctx.log.event("job_failed", level="ERROR", error=type(exc).__name__,
                      reason=reason[:2000] + hint)  # fmt: skip
        return EXIT_FAILED, f"{name} failed: {type(exc).__name__}: {reason[:500]}{hint}", {}
    ctx.log.event("job_succeeded", summary=summary)
    return EXIT_OK, "", summary


def run_module(module: Any, argv: Sequence[str]) -> tuple[int, str, dict[str, Any]]:
    """Run a job module (``NAME``, ``run`` and an optional ``parser()``) in this process, as
    its ``main`` does; returns (exit code, one-line reason if it failed, summary)."""
    parser = module.parser() if hasattr(module, "parser") else None
    return execute(module.NAME, argv, module.run, parser=parser)


_SERVICE_ERRORS = {
    "NoCredentialsError": "no AWS credentials",
    "EndpointConnectionError": "the AWS endpoint does not answer",
    "ConnectTimeoutError": "the AWS endpoint does not answer",
    "OperationalError": "the warehouse does not answer",
}


def next_step(exc: BaseException, env: str) -> str:
    """What to do about a failure that means a service is missing (empty for any other)."""
    kind = type(exc).__name__
    if kind not in _SERVICE_ERRORS:
        return ""
    if env.startswith(("local", "test")):
        return (
            f" ({_SERVICE_ERRORS[kind]}: start the local services with "
            "`decisionlake services start`, or `source .run/services.env` in this shell if "
            "they are running)"
        )
    return f" ({_SERVICE_ERRORS[kind]}: check the job's IAM role and the service endpoint)"


def run_job(
    name: str,
    argv: Sequence[str] | None,
    body: JobBody,
    *,
    parser: argparse.ArgumentParser | None = None,
    spark: SparkSession | None = None,
) -> int:
    """Parse ``argv``, run ``body`` and translate the outcome into an exit code.

    On failure the last line on stderr is a one-line reason; the JSON log has the details.
    """
    code, reason, _ = execute(name, argv, body, parser=parser, spark=spark)
    if code != EXIT_OK:
        print(reason, file=sys.stderr)
    return code
