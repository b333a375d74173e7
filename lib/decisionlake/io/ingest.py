"""Line-oriented ingest shared by every raw source: validate, quarantine, dedupe, MERGE.

A source supplies a :class:`LineIngestSpec`: how to validate raw lines and how to shape valid
ones into its bronze schema. The runner does the rest the same way for all: rejected lines
replace the run date's slice of the quarantine table, valid lines are deduplicated on the key and
inserted with an insert-only MERGE (or upserted, for a dimension), and the accounting is checked.

The contract of ``validate(raw, *, ingest_date, limits)``: ``raw`` has one row per delivered
line, ``value`` (the line, bytes as delivered, without its LF, a CRLF's CR or a byte-order
mark), ``source_file`` and ``line_bytes``; the result keeps those and adds ``reason`` (NULL for
a valid line, a quarantine reason code, or :data:`HEADER_LINE` for a header line, which is
counted apart) and ``_p`` (whatever the source parsed, read by its ``to_bronze``). ``limits`` is
the source's ``ingest.<source>`` config.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

from decisionlake.core.frames import cached, project
from decisionlake.core.runtime import JobContext
from decisionlake.io import lake

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("raw_line", T.StringType()),
        T.StructField("raw_bytes", T.BinaryType()),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)


FILE_QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("path", T.StringType(), False),
        T.StructField("size_bytes", T.LongType(), False),
        T.StructField("reason", T.StringType(), False),
        T.StructField("detail", T.StringType()),
        T.StructField("lines_readable", T.LongType()),
        T.StructField("bytes_readable", T.LongType()),
        T.StructField("run_id", T.StringType(), False),
    ]
)


HEADER_LINE = "HEADER_LINE"
"""``reason`` of a delimited file's header line: neither accepted nor quarantined, counted as
``header_lines`` (rows in = accepted + quarantined + header lines)."""


class AccountingError(RuntimeError):
    """Raised when rows in != rows accepted + rows quarantined."""


class QuarantinedFilesError(RuntimeError):
    """Files of the delivery were quarantined and the source's setting is ``fail``."""


class IncompleteReadError(RuntimeError):
    """A sound file was read only in part (a storage error part-way): the run must be retried."""


def consistent(read_bytes: int, actual_bytes: int) -> bool:
    """Whether the lines read (sizes plus one newline each) make up the whole file.

    The difference may be -1 (no final newline), 3 (a byte-order mark at the start, which the
    line reader skips) or 2 (both).
    """
    return actual_bytes - read_bytes in (-1, 0, 2, 3)


def file_verdicts(
    files: list[lake.LandingFile],
    per_file: dict[str, tuple[int, int]],
    verify: Callable[[list[lake.LandingFile]], dict[str, dict[str, Any]]],
) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Which delivered files to quarantine, the file count per reason, and how many files
    were read whole.

    ``per_file``: lines and bytes read per file (by Spark's file name). Every file is either
    read whole (its lines add up to its size, or to its gzip trailer's, or to what
    decompressing it again gives), or quarantined (``NOT_GZIP``, ``CORRUPT_GZIP``), or the
    run fails with :class:`IncompleteReadError`: a sound file read in part is never ingested
    in part.
    """
    quarantined: list[dict[str, Any]] = []
    by_reason: dict[str, int] = {}
    suspicious: list[lake.LandingFile] = []
    incomplete: list[str] = []
    read = 0
    for f in files:
        lines, size = per_file.get(f.uri, (0, 0))
        if f.reason:
            quarantined.append({"path": f.uri, "size_bytes": f.size, "reason": f.reason,
                                "detail": "not gzip data despite its name",
                                "lines_readable": lines, "bytes_readable": 0})  # fmt: skip
        elif f.size == 0:
            by_reason["EMPTY_FILE"] = by_reason.get("EMPTY_FILE", 0) + 1
            read += 1
        elif f.gzip_size is None:  # plain text: its size is the bytes to read
            if consistent(size, f.size):
                read += 1
            else:
                incomplete.append(f"{f.uri} ({size} of {f.size} bytes)")
        elif size % 2**32 in {f.gzip_size, (f.gzip_size + 1) % 2**32}:
            read += 1
        else:
            suspicious.append(f)
    checked = verify(suspicious)
    for f in suspicious:
        lines, size = per_file.get(f.uri, (0, 0))
        result = checked.get(f.uri, {"ok": False, "bytes_readable": 0, "error": "unreadable"})
        if not result["ok"]:
            quarantined.append({"path": f.uri, "size_bytes": f.size, "reason": "CORRUPT_GZIP",
                                "detail": result["error"], "lines_readable": lines,
                                "bytes_readable": result["bytes_readable"]})  # fmt: skip
        elif consistent(size, int(result["bytes_readable"])):
            read += 1  # several members, a byte-order mark, no final newline: all fine
        else:
            incomplete.append(f"{f.uri} ({size} of {result['bytes_readable']} bytes)")
    if incomplete:
        raise IncompleteReadError(
            f"{len(incomplete)} sound file(s) read only in part, nothing ingested: "
            f"{', '.join(incomplete[:5])}; rerun the ingest (a storage error part-way)"
        )
    for q in quarantined:
        by_reason[q["reason"]] = by_reason.get(q["reason"], 0) + 1
    return quarantined, by_reason, read


@dataclass(frozen=True)
class DocumentInput:
    """Whole files, one document each, under ``<landing>/<landing_dir>/date=<run date>/``,
    delivered beside (or instead of) a source's lines: each file is one row in.
    ``validate(files, *, ingest_date, limits)`` gets ``path``, ``length`` and ``content`` and
    returns what a line ``validate`` returns (with ``source_file`` and ``value``)."""

    landing_dir: str
    validate: Callable[..., DataFrame]


@dataclass(frozen=True)
class LineIngestSpec:
    """How one raw source's lines become bronze (declared by the source's module)."""

    landing_dir: str
    """Under the landing zone; ``date=<run date>/`` below it when ``dated``."""
    bronze_schema: T.StructType
    key: str
    order_by: tuple[str, ...]
    """Which of several lines with one key wins (the first by these columns)."""
    partition_by: tuple[str, ...]
    validate: Callable[..., DataFrame]
    to_bronze: Callable[..., DataFrame]
    dated: bool = True
    upsert_columns: tuple[str, ...] = ()
    """Empty: insert-only (events). Else: update rows whose listed columns changed (dimensions)."""
    allow_empty: bool = False
    """An empty delivery is a normal day (trades); a missing one is still an error."""
    partition_of_valid_line: Callable[[], Column] | None = None
    """The bronze partition value (one ``partition_by`` column) of a validated line: lets the
    validation pass also list the partitions the batch touches, so the MERGE needs no pass of
    its own to prune the target."""
    match_partitions: bool = True
    """False when a row's partition value can change between deliveries (a corrected note
    date): the MERGE then matches on the key alone (see :func:`lake.merge_insert_new`)."""
    documents: DocumentInput | None = None
    """Whole-file documents beside the lines; either input may then be absent on a day."""


@dataclass(frozen=True)
class IngestTarget:
    """Where one source's ingest writes, and its settings (``ingest.<source>``)."""

    source: str
    bronze_table: str
    quarantine_table: str
    limits: Any
    """Passed to the source's ``validate`` as ``limits``."""
    quarantined_files: str = "warn"


def valid_to_bronze(
    validated: DataFrame,
    schema: T.StructType,
    columns: dict[str, Column],
    *,
    ingest_date: date,
    run_id: str,
    ingested_at: Column | None = None,
    otherwise: Callable[[str], Column] = F.col,
) -> DataFrame:
    """A source's valid lines (``reason`` NULL) projected onto its bronze ``schema``:
    ``columns`` (else ``otherwise(name)``) plus the lineage every bronze row carries:
    ``source_file``, ``ingest_date``, ``ingested_at`` and ``run_id``."""
    lineage = {
        "source_file": F.col("source_file"),
        "ingest_date": F.lit(ingest_date),
        "ingested_at": ingested_at if ingested_at is not None else F.current_timestamp(),
        "run_id": F.lit(run_id),
    }
    valid = validated.where(F.col("reason").isNull())
    return project(valid, schema, {**lineage, **columns}, otherwise=otherwise)


def to_quarantine(
    validated: DataFrame, *, ingest_date: date, run_id: str, ingested_at: Column | None = None
) -> DataFrame:
    """Rejected lines with reason and exact raw bytes (schema :data:`QUARANTINE_SCHEMA`)."""
    columns = {
        "ingest_date": F.lit(ingest_date),
        "source_file": F.col("source_file"),
        "reason": F.col("reason"),
        "raw_line": F.make_valid_utf8("value"),
        "raw_bytes": F.col("value").cast("binary"),
        "ingested_at": ingested_at if ingested_at is not None else F.current_timestamp(),
        "run_id": F.lit(run_id),
    }
    rejected = F.col("reason").isNotNull() & (F.col("reason") != HEADER_LINE)
    return project(validated.where(rejected), QUARANTINE_SCHEMA, columns)


def dedupe_on(df: DataFrame, *, key: str, order_by: tuple[str, ...]) -> DataFrame:
    """One row per ``key``; the first by ``order_by`` wins."""
    first = Window.partitionBy(key).orderBy(*order_by)
    return (
        df.withColumn("_rank", F.row_number().over(first)).where(F.col("_rank") == 1).drop("_rank")
    )


def partition_values_aggs(partition: Column) -> list[Column]:
    """The distinct partition values (at most one more than the MERGE lists) and a NULL flag.

    Evaluated for valid lines only (``reason`` NULL): a rejected line's fields may not even
    convert (an out-of-range timestamp), and its partition is not written.
    """
    partition = F.when(F.col("reason").isNull(), partition)
    listed = F.slice(F.array_sort(F.collect_set(partition)), 1, lake.MAX_PRUNING_VALUES + 1)
    return [listed.alias("_partitions"), F.bool_or(partition.isNull()).alias("_null_partition")]


def partition_values_from(row: dict[str, Any]) -> list[Any] | None:
    """The listed partition values; None when they cannot prune (too many, or a NULL)."""
    values = row.get("_partitions")
    if values is None or row.get("_null_partition") or len(values) > lake.MAX_PRUNING_VALUES:
        return None
    return list(values)


def lines_per_file(lines: DataFrame) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Lines and bytes read per file (by :func:`lake.file_key`), and each key's spelling in
    ``source_file`` (one aggregate; one row per file)."""
    rows = (
        lines.groupBy("source_file")
        .agg(F.count("*").alias("lines"), F.sum("line_bytes").alias("bytes"))
        .collect()  # one row per file
    )
    counts = {lake.file_key(r["source_file"]): (int(r["lines"]), int(r["bytes"] or 0))
              for r in rows}  # fmt: skip
    return counts, {lake.file_key(r["source_file"]): r["source_file"] for r in rows}


def write_file_quarantine(ctx: JobContext, source: str, bad_files: list[dict[str, Any]]) -> None:
    """Replace the run date's slice of ``ops.file_quarantine`` for ``source``."""
    rows = [
        (ctx.run_date, source, f["path"], f["size_bytes"], f["reason"], f["detail"],
         f["lines_readable"], f["bytes_readable"], ctx.run_id)
        for f in bad_files
    ]  # fmt: skip
    lake.replace_slice(
        ctx.spark.createDataFrame(rows, FILE_QUARANTINE_SCHEMA),
        ctx.cfg.table_uri("ops.file_quarantine"),
        predicate=f"ingest_date = '{ctx.run_date.isoformat()}' AND source = '{source}'",
        schema=FILE_QUARANTINE_SCHEMA,
        partition_by=["ingest_date"],
    )


def landing_uri(ctx: JobContext, landing_dir: str, *, dated: bool = True) -> str:
    """``<landing>/<landing_dir>``, with ``/date=<run date>`` for a dated delivery."""
    uri = f"{ctx.cfg.paths.landing.rstrip('/')}/{landing_dir}"
    return f"{uri}/date={ctx.run_date.isoformat()}" if dated else uri


def read_delivery(
    ctx: JobContext, spec: LineIngestSpec, limits: Any
) -> tuple[list[lake.LandingFile], int, DataFrame]:
    """The delivery's line files as listed, its document count, and every line and document
    validated (one frame). A source with documents may lack either input on a day, not both."""
    spark, source = ctx.spark, landing_uri(ctx, spec.landing_dir, dated=spec.dated)
    frames: list[DataFrame] = []
    files: list[lake.LandingFile] = []
    documents = 0
    try:
        files = lake.inspect_landing_files(spark, source)
        raw = lake.read_text_lines(spark, source)
        frames.append(spec.validate(raw, ingest_date=ctx.run_date, limits=limits))
    except lake.LandingDataMissingError as exc:
        if spec.documents is None:
            raise
        ctx.log.event("input_missing", folder=spec.landing_dir, reason=str(exc))
    if spec.documents is not None:
        folder = landing_uri(ctx, spec.documents.landing_dir, dated=spec.dated)
        try:
            whole = lake.read_binary_files(spark, folder)
            # Counted from the reader's own listing (the files it will read, in one call):
            # listing them file by file through py4j took ~40 s a day at 6,500 documents.
            documents = len(whole.inputFiles())
            frames.append(
                spec.documents.validate(whole, ingest_date=ctx.run_date, limits=limits)
                .withColumn("line_bytes", F.lit(None).cast("long"))
            )  # fmt: skip
        except lake.LandingDataMissingError as exc:
            ctx.log.event("input_missing", folder=spec.documents.landing_dir, reason=str(exc))
        if not frames:
            raise lake.LandingDataMissingError(f"no lines at {source} and no documents at {folder}")
    return files, documents, reduce(lambda a, b: a.unionByName(b), frames)


def run_line_ingest(
    ctx: JobContext,
    spec: LineIngestSpec,
    target: IngestTarget,
    *,
    then: Callable[[DataFrame], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Ingest ``<landing>/<landing_dir>/date=<run-date>/`` (and the documents beside it);
    returns the accounting summary.

    ``then(batch)``: what follows from the batch once bronze has committed and before the
    quarantine is written (``ingest_text`` redacts it into silver); it gets the batch as
    written to bronze (deduplicated) and its figures join the summary.
    """
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    day = ctx.run_date.isoformat()
    source = landing_uri(ctx, spec.landing_dir, dated=spec.dated)
    bronze_uri = cfg.table_uri(target.bronze_table)
    quarantine_uri = cfg.table_uri(target.quarantine_table)
    ingested_at = F.current_timestamp()
    shaping = {"ingest_date": ctx.run_date, "run_id": ctx.run_id, "ingested_at": ingested_at}

    files, documents, validated_rows = read_delivery(ctx, spec, target.limits)
    # The raw line is kept for rejected lines only, the parsed one for valid lines only: the
    # cached batch holds each line once.
    kept = validated_rows.withColumn("value", F.when(F.col("reason").isNotNull(), F.col("value")))
    if "_p" in kept.columns:
        kept = kept.withColumn("_p", F.when(F.col("reason").isNull(), F.col("_p")))
    all_lines = kept.persist(StorageLevel.MEMORY_AND_DISK)
    with log.stage("read_files", source=source, files=len(files), documents=documents) as st:
        # The independent line count, per file (rows bounded by the file count); it also
        # computes the cached batch once for every later pass.
        per_file, spelled = lines_per_file(all_lines)
        bad_files, files_by_reason, files_read = file_verdicts(
            files, per_file, lambda found: lake.verify_gzip_files(spark, found)
        )
        bad = sorted(f["path"] for f in bad_files)
        lines_read = sum(n for path, (n, _) in per_file.items() if path not in bad)
        st.add(lines=lines_read, files_quarantined=len(bad), by_reason=files_by_reason)
    dropped = [spelled[k] for k in bad if k in spelled]  # as Spark spells the names
    validated = all_lines.where(~F.col("source_file").isin(*dropped)) if dropped else all_lines
    aggregates = [F.count("*").alias("rows")]
    if spec.partition_of_valid_line is not None:
        aggregates += partition_values_aggs(spec.partition_of_valid_line())

    def count_by_reason() -> dict[str, dict[str, Any]]:
        # One row per reason code, each with at most MAX_PRUNING_VALUES + 1 partition values.
        rows = validated.groupBy("reason").agg(*aggregates).collect()  # bounded, see above
        return {(r["reason"] or "VALID"): r.asDict() for r in rows}

    def count_then_write_quarantine() -> tuple[int, dict[str, Any]]:
        # The lines are counted as read, by a pass of their own, so the accounting compares two
        # independent counts. (Not with an Observation: once used, it makes the session's MLlib
        # models fail to serialize in Spark 4.1, and notebooks and the local runner share one
        # session.) An empty delivery fails here, before anything is written.
        if lines_read == 0 and not spec.allow_empty:
            raise lake.LandingDataMissingError(
                f"no readable lines in the files at {source}"
                + (f" ({len(bad)} file(s) quarantined)" if bad else "")
            )
        # Bronze commits first: a reader never finds today's quarantine beside a bronze table
        # without today's accepted rows (a kill in between leaves bronze ahead, not behind).
        bronze_done.wait()
        if not bronze_committed:
            return lines_read, {}
        with log.stage("write_quarantine", table=quarantine_uri) as st:
            metrics = lake.replace_slice(
                to_quarantine(validated, **shaping),
                quarantine_uri,
                predicate=f"ingest_date = '{day}'",
                schema=QUARANTINE_SCHEMA,
                partition_by=["ingest_date"],
            )
            st.add(rows_written=metrics.get("numOutputRows", 0), version=metrics.get("version"))
        write_file_quarantine(ctx, target.source, bad_files)
        return lines_read, metrics

    def merge_bronze(rows: DataFrame, touched: list[Any] | None) -> dict[str, Any]:
        with log.stage("merge_bronze", table=bronze_uri) as st:
            metrics = lake.merge_insert_new(
                spark,
                rows,
                bronze_uri,
                keys=[spec.key],
                schema=spec.bronze_schema,
                partition_by=list(spec.partition_by),
                update_when_changed=list(spec.upsert_columns),
                partition_values=touched,
                match_partitions=spec.match_partitions,
            )
            if "numSourceRows" not in metrics:  # a no-op rerun commits no figures: count
                metrics["numSourceRows"] = rows.count()
            st.add(
                unique_keys=metrics["numSourceRows"],
                inserted=metrics.get("numTargetRowsInserted", 0),
                updated=metrics.get("numTargetRowsUpdated", 0),
                version=metrics.get("version"),
            )
        return metrics

    bronze_done = threading.Event()
    bronze_committed: list[bool] = []

    def validate_then_merge() -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
        try:
            with log.stage("read_validate", source=source) as st:
                by_reason = count_by_reason()
                valid = by_reason.get("VALID", {"rows": 0})
                rejected = sum(int(r["rows"]) for k, r in by_reason.items() if k != "VALID")
                # (header lines included: a file of nothing but its header is still a delivery)
                if int(valid["rows"]) + rejected == 0 and not spec.allow_empty:
                    raise lake.LandingDataMissingError(f"no lines in the files at {source}")
                st.add(valid=int(valid["rows"]), quarantined=rejected)
            touched = partition_values_from(valid) if spec.partition_of_valid_line else None
            rows = spec.to_bronze(validated, **shaping).transform(
                dedupe_on, key=spec.key, order_by=spec.order_by
            )
            if then is None:
                merged, followed = merge_bronze(rows, touched), {}
            else:  # the batch is deduplicated once for bronze and what follows
                with cached(rows) as batch:
                    merged = merge_bronze(batch, touched)
                    followed = then(batch)
            bronze_committed.append(True)  # (and what follows from it)
            return by_reason, merged, followed
        finally:
            bronze_done.set()  # the quarantine write goes on, or gives up if this failed

    # The quarantine side needs no figure from the validation pass: its independent line
    # count runs beside validation and MERGE, then it writes once bronze has committed. Both
    # read the cached batch, which is computed once (a block being computed by one task is
    # waited for, then read, by the other).
    try:
        if lines_read == 0 and bad and not spec.allow_empty:
            write_file_quarantine(ctx, target.source, bad_files)  # nothing readable: record, fail
        (lines_read, q_metrics), (by_reason, b_metrics, followed) = lake.run_concurrently(
            spark, count_then_write_quarantine, validate_then_merge
        )
    finally:
        all_lines.unpersist()
    valid_rows = int(by_reason.pop("VALID", {"rows": 0})["rows"])
    header_lines = int(by_reason.pop(HEADER_LINE, {"rows": 0})["rows"])
    quarantined = {reason: int(r["rows"]) for reason, r in sorted(by_reason.items())}
    inserted = b_metrics.get("numTargetRowsInserted", 0)
    valid_keys = b_metrics["numSourceRows"]  # the deduplicated batch the MERGE read
    updated = b_metrics.get("numTargetRowsUpdated", 0)

    summary = {
        "run_date": day,
        "source": target.source,
        "landing": source,
        "rows_in": lines_read,
        "accepted": valid_rows,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_reason": quarantined,
        "header_lines": header_lines,
        "duplicates_in_batch": valid_rows - valid_keys,
        "inserted": inserted,
        "updated": updated,
        "already_present": valid_keys - inserted,
        "tables": {target.bronze_table: bronze_uri, target.quarantine_table: quarantine_uri},
        "files": {
            "in": len(files) + documents,
            "read": files_read + documents,
            "quarantined": len(bad),
            "by_reason": files_by_reason,
            "lines_in_quarantined_files": sum(per_file.get(p, (0, 0))[0] for p in bad),
        },
    }
    summary.update(followed)
    check_accounting(summary, quarantine_rows_written=q_metrics.get("numOutputRows", 0))
    if bad:
        log.event("files_quarantined", level="WARNING", source=target.source, files=bad_files)
        if target.quarantined_files == "fail":
            raise QuarantinedFilesError(
                f"{len(bad)} file(s) of {day} quarantined ({files_by_reason}); the good files "
                f"were ingested; see ops.file_quarantine (source {target.source})"
            )
    return summary


def check_accounting(summary: dict[str, Any], *, quarantine_rows_written: int) -> None:
    """Fail loudly if any line is unaccounted for."""
    headers = summary.get("header_lines", 0)
    if summary["rows_in"] != summary["accepted"] + summary["quarantined"] + headers:
        raise AccountingError(
            f"rows in {summary['rows_in']} != accepted + quarantined + header lines: {summary}"
        )
    if quarantine_rows_written != summary["quarantined"]:
        raise AccountingError(
            f"quarantine wrote {quarantine_rows_written} rows, expected {summary['quarantined']}"
        )
    files = summary.get("files")
    if files and files["in"] != files["read"] + files["quarantined"]:
        raise AccountingError(f"files in != files read + quarantined: {files}")
    if summary["already_present"] < 0:
        raise AccountingError(f"inserted more rows than were valid: {summary}")
