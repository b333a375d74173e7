"""The I/O layer: every read of the landing zone and every Delta write goes through here.

Writes are idempotent by construction: insert-only MERGE on a key for event tables, and
``replaceWhere`` on the run's slice for tables rebuilt per run date.
"""

from __future__ import annotations

import functools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pandas as pd
from delta.exceptions import DeltaConcurrentModificationException
from delta.tables import DeltaTable
from pyspark import inheritable_thread_target
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.frames import RunWindow, cached


class LandingDataMissingError(RuntimeError):
    """Raised when a run date has no input files."""


@dataclass(frozen=True)
class LandingFile:
    """One delivered file as listed, with what its first and last bytes say about it."""

    uri: str
    """The file's key (:func:`file_key`), the same for a listing and Spark's file names."""
    size: int
    reason: str | None = None
    """Set when the file cannot be read at all (``NOT_GZIP``); None otherwise."""
    gzip_size: int | None = None
    """A gzip file's trailer: the uncompressed size mod 2**32 (of its last member)."""
    path: str = ""
    """The plain path (decoded), to open the file again."""


GZIP_MAGIC = b"\x1f\x8b"


def file_key(name: str) -> str:
    """One spelling of a file's URI: Spark's ``_metadata.file_path`` is URI-encoded
    (``%20``), Hadoop listings are not, and ``file:///`` and ``file:/`` name the same file."""
    decoded = unquote(name)
    return "file:/" + decoded.removeprefix("file:").lstrip("/") if decoded.startswith(
        "file:"
    ) else decoded  # fmt: skip


def _skipped_by_spark(name: str) -> bool:
    """File and folder names Spark's file sources leave out (hidden, markers, in-copy)."""
    return (
        (name.startswith("_") and "=" not in name)
        or name.startswith(".")
        or name.endswith("._COPYING_")
    )


def inspect_landing_files(spark: SparkSession, uri: str) -> list[LandingFile]:
    """List the files under ``uri`` that Spark reads and read their first two and last eight
    bytes.

    File-sized work on the driver (a listing and two small reads per file), so a file that is
    not what its name says, or is cut short, is found without reading it twice.
    """
    jvm = spark.sparkContext._jvm  # type: ignore[union-attr]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    root = jvm.org.apache.hadoop.fs.Path(uri)
    fs = root.getFileSystem(conf)
    if not fs.exists(root):
        raise LandingDataMissingError(f"no input files at {uri}")
    base = fs.makeQualified(root).toUri().getPath().rstrip("/")
    found: list[LandingFile] = []
    listing = fs.listFiles(root, True)
    while listing.hasNext():
        status = listing.next()
        path = status.getPath()
        below = path.toUri().getPath()[len(base) :].strip("/").split("/")
        if any(_skipped_by_spark(part) for part in below):
            continue
        size = int(status.getLen())
        spark_name, plain = file_key(path.toString()), path.toString()
        if not path.getName().endswith(".gz") or size == 0:
            found.append(LandingFile(spark_name, size, path=plain))
            continue
        head, tail = _read_ends(jvm, fs, path, size)
        if head[:2] != GZIP_MAGIC:
            found.append(LandingFile(spark_name, size, reason="NOT_GZIP", path=plain))
            continue
        gzip_size = int.from_bytes(tail[-4:], "little") if len(tail) == 8 else None
        found.append(LandingFile(spark_name, size, gzip_size=gzip_size, path=plain))
    return found


def _read_ends(jvm: Any, fs: Any, path: Any, size: int) -> tuple[bytes, bytes]:
    # py4j copies a byte[] by value, so the JVM returns the bytes (no buffer filled in place).
    read = jvm.org.apache.commons.io.IOUtils.toByteArray
    stream = fs.open(path)
    try:
        head = bytes(read(stream, min(2, size)))
        stream.seek(max(size - 8, 0))
        tail = bytes(read(stream, min(8, size)))
    finally:
        stream.close()
    return head, tail


def verify_gzip_files(spark: SparkSession, files: list[LandingFile]) -> dict[str, dict[str, Any]]:
    """Decompress the given files on the executors: ``{uri: {ok, bytes_readable, error}}``.

    Only for files whose lines did not add up to their gzip trailer (a cut-short file, or a
    valid one with several gzip members, a byte-order mark or no final newline): whole-file
    work, but on the few suspicious files only.
    """
    if not files:
        return {}
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("ok boolean, bytes_readable long, error string")  # type: ignore[call-overload]
    def check(contents: pd.Series) -> pd.DataFrame:
        return pd.DataFrame([_gunzip_check(bytes(c)) for c in contents])

    # Glob characters in a name are literal here.
    paths = [re.sub(r"([\[\]{}*?\\])", r"\\\1", f.path or f.uri) for f in files]
    loaded = spark.read.format("binaryFile").load(paths).select("path", "content")
    # One small row per suspicious file: the caller already holds that list on the driver.
    rows = loaded.select("path", check("content").alias("c")).collect()
    return {file_key(r["path"]): r["c"].asDict() for r in rows}


def _gunzip_check(content: bytes) -> dict[str, Any]:
    """Whether ``content`` is complete gzip (every member, CRC and size checked)."""
    import zlib

    total, data = 0, content
    try:
        while data:
            member = zlib.decompressobj(wbits=31)
            total += len(member.decompress(data))
            total += len(member.flush())
            if not member.eof:
                return {"ok": False, "bytes_readable": total, "error": "unexpected end of data"}
            data = member.unused_data.lstrip(b"\x00")
    except zlib.error as exc:
        return {"ok": False, "bytes_readable": total, "error": str(exc)}
    return {"ok": True, "bytes_readable": total, "error": None}


def read_text_lines(spark: SparkSession, uri: str) -> DataFrame:
    """Lines of every file under ``uri`` (``.gz`` decompressed) as ``value``, ``source_file``
    and ``line_bytes`` (the line's size as delivered, with its newline).

    Bytes are kept as they are (invalid UTF-8 included), so validation can judge them. A file
    that breaks off (a cut-short gzip) yields the lines before the break instead of failing
    the read: :func:`inspect_landing_files` and the lines' sizes tell such files apart.
    """
    try:
        # Lines end at LF only: a raw carriage return inside a value stays in its line (the
        # default also splits at CR, making two broken lines of one); CRLF's CR is cut below.
        lines = spark.read.option("lineSep", "\n").option("ignoreCorruptFiles", "true").text(uri)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            raise LandingDataMissingError(f"no input files at {uri}") from None
        raise
    return lines.select(
        line_without_crlf_or_bom(F.col("value")).alias("value"),
        F.col("_metadata.file_path").alias("source_file"),
        (F.octet_length(F.col("value").cast("binary")) + 1).alias("line_bytes"),
    )


_BOM = bytes.fromhex("efbbbf")


def line_without_crlf_or_bom(value: Column) -> Column:
    """The line without a CRLF's trailing CR and without a leading UTF-8 byte-order mark.

    Neither is data: a file written on Windows ends lines with CRLF, and files joined
    together carry their BOM into a later line. Done on bytes, so invalid UTF-8 stays exactly
    as it arrived for validation to judge.
    """
    raw = value.cast("binary")
    size = F.octet_length(raw)
    ends_cr = F.substring(raw, -1, 1) == F.lit(b"\r")
    raw = F.when(ends_cr, raw.substr(F.lit(1), size - 1)).otherwise(raw)
    starts_bom = F.substring(raw, 1, 3) == F.lit(_BOM)
    raw = F.when(starts_bom, raw.substr(F.lit(4), F.octet_length(raw))).otherwise(raw)
    return raw.cast("string")


def read_binary_files(spark: SparkSession, uri: str) -> DataFrame:
    """Whole files under ``uri`` as ``path``, ``length``, ``content`` (bytes as stored)."""
    try:
        return spark.read.format("binaryFile").load(uri).select("path", "length", "content")
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            raise LandingDataMissingError(f"no input files at {uri}") from None
        raise


def read_delta(spark: SparkSession, uri: str, *, version: int | None = None) -> DataFrame:
    """A Delta table by URI (at ``version`` when given: time travel)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(uri)


def read_table(spark: SparkSession, uri: str, fmt: str = "delta") -> DataFrame:
    """Any table a model spec may name: Delta, Parquet, or CSV with a header row."""
    if fmt == "delta":
        return read_delta(spark, uri)
    if fmt == "parquet":
        return spark.read.parquet(uri)
    if fmt == "csv":
        return spark.read.option("header", "true").option("inferSchema", "true").csv(uri)
    raise ValueError(f"unsupported table format {fmt!r}")


def run_concurrently(spark: SparkSession, *writes: Callable[[], Any]) -> list[Any]:
    """Run independent writes (to different tables) in threads; results in order.

    Threads inherit the caller's Spark job group and properties. Every write runs to its end
    and the first failure is raised afterwards, so no write is abandoned half-way.
    """
    if len(writes) == 1:
        return [writes[0]()]
    with ThreadPoolExecutor(len(writes)) as pool:
        futures = [pool.submit(_inheriting(spark, write)) for write in writes]
        wait(futures)
    return [f.result() for f in futures]


def _inheriting(spark: SparkSession, write: Callable[[], Any]) -> Callable[[], Any]:
    """``write`` run with its own copy of the caller's job group, properties and tags."""
    wrap = inheritable_thread_target(spark)  # copies the properties now, once per write
    return write if isinstance(wrap, SparkSession) else wrap(write)  # pinned threads off: as is


def delta_table_exists(spark: SparkSession, uri: str) -> bool:
    """Whether ``uri`` holds a Delta table."""
    return bool(DeltaTable.isDeltaTable(spark, uri))


CONFLICT_ATTEMPTS = 4
_retrying = threading.local()


class ConcurrentWriteError(RuntimeError):
    """Another writer kept committing to the same table; the write was retried and gave up."""


def is_conflict(exc: BaseException) -> bool:
    """A Delta optimistic-concurrency conflict, or a concurrent first create of a table."""
    if isinstance(exc, DeltaConcurrentModificationException):
        return True
    text = str(exc)
    return any(
        marker in text
        for marker in (
            "DELTA_CONCURRENT_",
            "ConcurrentAppendException",
            "ConcurrentDeleteReadException",
            "ConcurrentTransactionException",
            "MetadataChangedException",
            "ProtocolChangedException",
            # Two first writers: the loser finds the other's files before its log exists,
            # or the other's _delta_log folder before its first commit is in it.
            "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION",
            "DELTA_TABLE_NOT_FOUND",
        )
    )


def retry_conflicts(write: Callable[..., Any]) -> Callable[..., Any]:
    """Retry a whole (idempotent) write after a concurrent commit, with jittered backoff.

    Every write of this module is idempotent (MERGE on keys, replaceWhere on a slice), so
    running it again after a conflict gives the result a lone writer would have. Only the
    outermost write retries (writes call each other).
    """

    @functools.wraps(write)
    def retrying(*args: Any, **kwargs: Any) -> Any:
        if getattr(_retrying, "active", False):
            return write(*args, **kwargs)
        _retrying.active = True
        try:
            for attempt in range(1, CONFLICT_ATTEMPTS + 1):
                try:
                    return write(*args, **kwargs)
                except Exception as exc:
                    if not is_conflict(exc):
                        raise
                    if attempt == CONFLICT_ATTEMPTS:
                        raise ConcurrentWriteError(
                            f"concurrent write, retried {attempt - 1} times: "
                            f"{' '.join(str(exc).split())[:300]}"
                        ) from exc
                    time.sleep(random.uniform(0.2, 1.0) * 2 ** (attempt - 1))
        finally:
            _retrying.active = False
        raise AssertionError("unreachable")

    return retrying


@retry_conflicts
def ensure_delta_table(
    spark: SparkSession,
    uri: str,
    schema: T.StructType,
    partition_by: Sequence[str] = (),
    properties: dict[str, str] | None = None,
) -> DeltaTable:
    """Create the Delta table at ``uri`` if it does not exist yet; return it."""
    builder = DeltaTable.createIfNotExists(spark).location(uri).addColumns(schema)
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    return builder.execute()


# Updates and deletes mark rows in deletion vectors instead of rewriting whole files.
INCREMENTAL_TABLE_PROPERTIES = {"delta.enableDeletionVectors": "true"}


def replace_changed_slices(
    source: DataFrame,
    uri: str,
    *,
    window: RunWindow,
    window_column: str,
    partition_by: Sequence[str] = (),
) -> dict[str, Any]:
    """Make the table's rows inside ``window`` equal ``source``, rewriting only the dates
    (values of ``window_column``) whose rows differ.

    Each side is summarised per date by its row count and the sum of a 64-bit hash of each
    whole row (one aggregate each, no join of rows); the dates whose summaries differ are
    replaced with ``replaceWhere``. Nothing differs: no write and no commit.
    """
    spark = source.sparkSession
    ensure_delta_table(spark, uri, source.schema, partition_by, INCREMENTAL_TABLE_PROPERTIES)
    columns = source.columns

    def summary(rows: DataFrame) -> dict[Any, tuple[int, int]]:
        # Spark's hash skips nulls, so which columns are null is hashed too: (null, 1) and
        # (1, null) must differ.
        nulls = F.array(*[F.col(c).isNull() for c in columns])
        row_hash = F.xxhash64(nulls, *[F.col(c) for c in columns])
        found = (
            rows.where(window.contains(window_column))
            .groupBy(window_column)
            .agg(F.count("*").alias("n"), F.sum(row_hash.cast("decimal(38,0)")).alias("h"))
            .collect()  # one row per date of the window
        )
        return {r[window_column]: (int(r["n"]), int(r["h"])) for r in found}

    current = summary(read_delta(spark, uri).select(*columns))
    with cached(source) as rows:  # summarised, then written: computed once
        wanted = summary(rows)
        changed = sorted(d for d in set(current) | set(wanted) if current.get(d) != wanted.get(d))
        if not changed:
            return {"datesReplaced": [], "numOutputRows": 0}
        listed = ", ".join(f"'{d.isoformat()}'" for d in changed)
        written = replace_slice(
            rows.where(F.col(window_column).isin(changed)), uri,
            predicate=f"`{window_column}` IN ({listed})", partition_by=partition_by,
        )  # fmt: skip
    written["datesReplaced"] = [d.isoformat() for d in changed]
    return written


def last_operation_metrics(spark: SparkSession, uri: str) -> dict[str, Any]:
    """Operation name, version and metrics of the latest commit of a Delta table.

    Read from the commit file itself (the protocol's JSON) when this session knows the table's
    latest version, which it does right after its own write; else from the table history
    (a Spark job).
    """
    commit = latest_commit_info(spark, uri)
    if commit is None:
        row = (
            DeltaTable.forPath(spark, uri)
            .history(1)
            .select("version", "operation", "operationMetrics", "userMetadata")
            .first()
        )  # one row: the latest commit
        if row is None:
            return {}
        commit = row.asDict()
    raw = commit.get("operationMetrics") or {}
    metrics = {k: int(v) for k, v in raw.items() if str(v).isdigit()}
    found = {"version": commit["version"], "operation": commit["operation"], **metrics}
    if commit.get("userMetadata"):
        found["userMetadata"] = commit["userMetadata"]
    return found


def latest_commit_info(spark: SparkSession, uri: str) -> dict[str, Any] | None:
    """``commitInfo`` (plus ``version``) of the newest commit this session has seen, or None.

    No Spark job: the session's Delta log names the version, and its commit file is read
    directly. None when that is not possible (no JVM, as with Spark Connect; no commit info).
    """
    try:
        jvm = spark._jvm  # type: ignore[attr-defined]
        delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
            spark._jsparkSession,  # type: ignore[attr-defined]
            uri,
        )
        version = int(delta_log.unsafeVolatileSnapshot().version())
        if version < 0:
            return None
        path = jvm.org.apache.hadoop.fs.Path(delta_log.logPath(), f"{version:020d}.json")
        filesystem = path.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
        reader = jvm.java.io.BufferedReader(
            jvm.java.io.InputStreamReader(filesystem.open(path), "UTF-8")
        )
        try:
            # Line by line up to the commitInfo action (usually the first): a large commit's
            # file actions are not pulled into Python.
            while (line := reader.readLine()) is not None:
                action = json.loads(line) if line.strip() else {}
                if "commitInfo" in action:
                    return {**action["commitInfo"], "version": version}
        finally:
            reader.close()
    except Exception:  # any failure: the caller falls back to the history
        return None
    return None


@retry_conflicts
def merge_insert_new(
    spark: SparkSession,
    source: DataFrame,
    uri: str,
    *,
    keys: Sequence[str],
    schema: T.StructType,
    partition_by: Sequence[str] = (),
    update_when_changed: Sequence[str] = (),
    match_partitions: bool = True,
    partition_values: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Insert rows whose key is not in the table yet; returns metrics.

    Partition columns join the match condition so Delta prunes target files; they must be
    functionally dependent on the key (an event's date never changes). With one partition
    column, the condition also lists the source's partition values as literals, so the MERGE
    reads only the partitions the batch touches however long the table's history grows. With
    ``update_when_changed``, matched rows whose listed columns differ are updated (a dimension
    upsert); unchanged rows are left alone, so a rerun rewrites nothing. Set
    ``match_partitions=False`` when a row's partition value can change (a corrected note date):
    the match is then on the key alone, at the cost of partition pruning.
    ``partition_values``: the source's values of the one partition column when the caller
    already knows them (saves a pass over the source); they must cover every source row.
    """
    target = ensure_delta_table(spark, uri, schema, partition_by)
    pruning = list(partition_by) if match_partitions else []
    match_columns = [*pruning, *[k for k in keys if k not in pruning]]
    condition = F.expr(" AND ".join(f"t.`{c}` = s.`{c}`" for c in match_columns))
    if len(pruning) == 1:
        values = (
            list(partition_values)
            if partition_values is not None
            else source_partition_values(source, pruning[0])
        )
        if values is not None:
            condition = F.col(f"t.`{pruning[0]}`").isin(values) & condition
    if not update_when_changed:
        counts = _merge_counts(target, source, condition, changed=None)
        return _merge_metrics(spark, uri, counts, delivered=None)
    # Only new or changed rows go into the MERGE: a matched row, even one the update clause
    # then skips, makes Delta rewrite its whole file (a rerun would copy every row of the
    # table and commit a new version for nothing). They are computed once, with the batch's
    # count on the way, and handed to the MERGE as a local checkpoint: its plan no longer
    # reads any table, so the MERGE does not plan and run the source's reads and joins again
    # (a cached frame is not enough: Delta re-plans a source that reads the target; #16
    # counted the source computed three times). A lost executor fails the step, which its
    # retry reruns: the write is idempotent.
    same = F.expr(" AND ".join(f"t.`{c}` <=> s.`{c}`" for c in [*keys, *update_when_changed]))
    changed_test = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in update_when_changed)
    with cached(source) as batch:
        delivered = batch.count()  # the batch's rows, before unchanged ones are set aside
        fresh = batch.alias("s").join(target.toDF().alias("t"), same, "left_anti")
        new_or_changed = fresh.localCheckpoint(eager=True)
    if new_or_changed.isEmpty():  # nothing new, nothing changed: no commit at all
        return {"numTargetRowsInserted": 0, "numTargetRowsUpdated": 0,
                "numSourceRows": delivered}  # fmt: skip
    counts = _merge_counts(target, new_or_changed, condition, changed=changed_test)
    return _merge_metrics(spark, uri, counts, delivered=delivered)


def _merge_counts(
    target: DeltaTable, source: DataFrame, condition: Column, *, changed: str | None
) -> tuple[int, int]:
    """Run the MERGE (insert new keys; update matched rows where ``changed`` holds)."""
    merge = target.alias("t").merge(source.alias("s"), condition)
    if changed is not None:
        merge = merge.whenMatchedUpdateAll(condition=changed)
    counts = merge.whenNotMatchedInsertAll().execute().first()  # one row of counts
    if not counts:
        return 0, 0
    return int(counts["num_inserted_rows"]), int(counts["num_updated_rows"])


def _merge_metrics(
    spark: SparkSession, uri: str, counts: tuple[int, int], *, delivered: int | None
) -> dict[str, Any]:
    """The MERGE's commit figures (when it committed), with its own counts."""
    inserted, updated = counts
    # A MERGE that changed nothing may not commit; only a changing one needs the commit's figures.
    metrics = last_operation_metrics(spark, uri) if inserted or updated else {}
    ours = (
        metrics.get("operation") == "MERGE"
        and metrics.get("numTargetRowsInserted") == inserted
        and metrics.get("numTargetRowsUpdated", 0) == updated
    )
    if not ours:  # no commit, or another writer's latest: its figures are not this MERGE's
        metrics = {}
    metrics.pop("userMetadata", None)
    metrics["numTargetRowsInserted"] = inserted
    metrics["numTargetRowsUpdated"] = updated
    if delivered is not None:
        metrics["numSourceRows"] = delivered  # the commit's count is the changed rows only
    return metrics


MAX_PRUNING_VALUES = 1000


def source_partition_values(source: DataFrame, column: str) -> list[Any] | None:
    """The distinct values of ``column`` in ``source``; None when there are too many to list.

    At most ``MAX_PRUNING_VALUES + 1`` values reach the driver.
    """
    distinct = source.select(column).distinct().limit(MAX_PRUNING_VALUES + 1)
    rows = distinct.collect()  # bounded by the limit
    if len(rows) > MAX_PRUNING_VALUES or any(r[0] is None for r in rows):
        return None
    return sorted(r[0] for r in rows)


_DV_DELETES = "spark.databricks.delta.delete.deletionVectors.persistent"
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


@retry_conflicts
def delete_rows(spark: SparkSession, uri: str, condition: Column) -> int:
    """DELETE the matching rows by rewriting their files; returns the rows this call removed.

    Copy-on-write even where the table uses deletion vectors (a hidden row is not an erased
    row). A DELETE that matches nothing writes no commit: that is 0, never the figures of an
    earlier commit.
    """
    table = DeltaTable.forPath(spark, uri)
    before = _current_version(table)
    spark.conf.set(_DV_DELETES, "false")
    try:
        table.delete(condition)
    finally:
        spark.conf.unset(_DV_DELETES)
    commit = last_operation_metrics(spark, uri)
    if commit.get("version", before) <= before or commit.get("operation") != "DELETE":
        return 0
    return int(commit.get("numDeletedRows", 0))


def purge_history(spark: SparkSession, uri: str) -> None:
    """Rewrite files with deletion vectors and drop every file no longer in the latest version.

    Time travel before now is gone afterwards: only for a table whose rows were just erased.
    """
    spark.sql(f"REORG TABLE delta.`{uri}` APPLY (PURGE)")
    spark.conf.set(_RETENTION_CHECK, "false")
    try:
        # LITE finds the files to drop in the log, not by listing the table.
        spark.sql(f"VACUUM delta.`{uri}` RETAIN 0 HOURS LITE")
    finally:
        spark.conf.set(_RETENTION_CHECK, "true")


def table_version(spark: SparkSession, uri: str) -> int:
    """The latest commit version of a Delta table."""
    return _current_version(DeltaTable.forPath(spark, uri))


def _current_version(table: DeltaTable) -> int:
    row = table.history(1).select("version").first()
    return int(row["version"]) if row else -1


@retry_conflicts
def overwrite_table(
    source: DataFrame, uri: str, *, partition_by: Sequence[str] = ()
) -> dict[str, Any]:
    """Replace a whole (small, derived) table atomically; earlier versions stay readable.

    Never with deletion vectors: these copies are for readers outside Spark (delta-rs,
    Athena, Redshift Spectrum), whose plain readers refuse them.
    """
    writer = (
        source.write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("delta.enableDeletionVectors", "false")
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(uri)
    return last_operation_metrics(source.sparkSession, uri)


@retry_conflicts
def replace_slice(
    source: DataFrame,
    uri: str,
    *,
    predicate: str,
    schema: T.StructType | None = None,
    partition_by: Sequence[str] = (),
    add_new_columns: bool = False,
    optimize_write: bool | None = None,
) -> dict[str, Any]:
    """Atomically replace the rows matching ``predicate`` with ``source`` (``replaceWhere``).

    ``add_new_columns`` lets a feature table grow: columns the table lacks are added (older
    slices read them as NULL); removing or retyping columns still fails. ``optimize_write``
    overrides the session's Delta optimized write for this write only (None: the session's).
    No Spark Observation counts the rows on the way: once one is used, Spark 4.1's session
    holds an unserializable ObservationManager, and every MLlib model whose training summary
    refers to the session (random forests) then fails with "Task not serializable" in that
    session.
    """
    spark = source.sparkSession
    ensure_delta_table(spark, uri, schema or source.schema, partition_by)
    # A token in the commit tells our commit from an older one in a single history read.
    token = f"decisionlake:replace:{uuid.uuid4().hex}"
    writer = (
        source.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .option("userMetadata", token)
    )
    if add_new_columns:
        writer = writer.option("mergeSchema", "true")
    if optimize_write is not None:
        writer = writer.option("optimizeWrite", str(optimize_write).lower())
    writer.save(uri)
    metrics = last_operation_metrics(spark, uri)
    if metrics.pop("userMetadata", None) != token:
        # Nothing to delete and nothing to write makes no commit: the latest one is older.
        return {"version": metrics.get("version"), "operation": "NONE", "numOutputRows": 0}
    return metrics
