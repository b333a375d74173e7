"""Stage a DataFrame for COPY: Parquet written by the executors, plus a COPY manifest."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyarrow.fs import FileSelector, FileType
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.config import StorageConfig
from decisionlake.io.storage import delete_prefix, filesystem_for, write_bytes
from decisionlake.warehouse.ddl import is_nested


@dataclass(frozen=True)
class StagedData:
    """Where the staged files are and what they hold."""

    prefix: str
    manifest: str
    files: list[tuple[str, int]]
    columns: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    """Aggregates over the staged files (what the warehouse will load), when asked for."""

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)


def for_copy(df: DataFrame) -> DataFrame:
    """Nested columns as JSON text (SUPER/JSONB take JSON)."""
    return df.select(
        *[
            F.to_json(F.col(f.name)).alias(f.name) if is_nested(f.dataType) else F.col(f.name)
            for f in df.schema
        ]
    )


def s3_url(uri: str) -> str:
    """The ``s3://`` form the warehouse understands for an ``s3a://`` path."""
    for prefix in ("s3a://", "s3n://"):
        if uri.startswith(prefix):
            return "s3://" + uri[len(prefix) :]
    return uri


def stage(
    df: DataFrame,
    prefix: str,
    *,
    storage: StorageConfig,
    files: int | None = None,
    max_files: int = 64,
    rows_per_file: int = 0,
    row_group_bytes: int = 0,
    metrics: Callable[[DataFrame], Sequence[Column]] | None = None,
) -> StagedData:
    """Write ``df`` as Parquet files under ``prefix`` and a manifest beside them.

    The rows go from the executors to storage directly; the driver only lists the files.
    By default every partition writes its own files (so the warehouse loads them in
    parallel), at most ``max_files`` partitions and ``rows_per_file`` rows per file.
    ``metrics(staged)`` are aggregates computed by reading the staged Parquet back: columnar,
    only the columns they need, and exactly the rows the warehouse will load.

    Args:
        df: Rows to stage.
        prefix: Run-specific prefix; data under ``data/``, manifest at ``manifest.json``.
        storage: Storage settings (S3 endpoint).
        files: Exactly this many files (a shuffle-free coalesce, or a repartition).
        max_files: Cap on files when ``files`` is not given.
        rows_per_file: Split larger partitions into files of at most this many rows.
        row_group_bytes: Parquet row groups of about this size (0: Parquet's default); a
            loader that splits files by row group gets more units than files.
        metrics: Builds the aggregate columns over the staged (JSON-shaped) rows.
    """
    data_uri = f"{prefix.rstrip('/')}/data"
    shaped = for_copy(df)
    partitions = shaped.rdd.getNumPartitions()
    if files is not None and files > partitions:
        shaped = shaped.repartition(files)
    elif files is not None or partitions > max_files:
        shaped = shaped.coalesce(max(min(files or max_files, partitions), 1))
    writer = shaped.write.mode("overwrite")
    if rows_per_file:
        writer = writer.option("maxRecordsPerFile", rows_per_file)
    if row_group_bytes:
        writer = writer.option("parquet.block.size", row_group_bytes)
    writer.parquet(data_uri)
    filesystem, path = filesystem_for(data_uri, storage)
    listed = sorted(
        (info.path, info.size)
        for info in filesystem.get_file_info(FileSelector(path, recursive=False))
        if info.type == FileType.File and info.base_name.endswith(".parquet")
    )
    scheme = data_uri.split("://", 1)[0] + "://" if "://" in data_uri else ""
    staged = [(f"{scheme}{p}" if scheme else p, int(size)) for p, size in listed]
    manifest = {
        "entries": [
            {"url": s3_url(uri), "mandatory": True, "meta": {"content_length": size}}
            for uri, size in staged
        ]
    }
    manifest_uri = f"{prefix.rstrip('/')}/manifest.json"
    write_bytes(manifest_uri, json.dumps(manifest, indent=1).encode(), storage)
    measured: dict[str, Any] = {}
    if metrics is not None:
        written = df.sparkSession.read.parquet(data_uri)
        measured = written.agg(*metrics(written)).first().asDict()  # one row
    return StagedData(prefix, manifest_uri, staged, df.columns, measured)


def clean(staged: StagedData, storage: StorageConfig) -> None:
    """Remove the staged files and manifest."""
    delete_prefix(staged.prefix, storage)


def clean_stale(
    parent: str, *, keep: str, storage: StorageConfig, older_than_minutes: float
) -> list[str]:
    """Remove the staging folders of earlier loads of one target (killed or failed ones).

    ``parent`` holds one folder per run id; ``keep`` (this load's) stays, and so does any
    folder with a file newer than ``older_than_minutes`` (a load of the same target that may
    still be running). Returns the folders removed.
    """
    import time

    from pyarrow import fs as pafs

    from decisionlake.io.storage import filesystem_for

    filesystem, path = filesystem_for(parent, storage)
    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        return []
    cutoff = time.time() - older_than_minutes * 60
    removed = []
    for folder in filesystem.get_file_info(pafs.FileSelector(path)):
        if folder.type != pafs.FileType.Directory or folder.base_name == keep:
            continue
        files = filesystem.get_file_info(pafs.FileSelector(folder.path, recursive=True))
        newest = max(
            (f.mtime.timestamp() for f in files if f.type == pafs.FileType.File and f.mtime),
            default=0.0,
        )
        if newest <= cutoff:
            filesystem.delete_dir(folder.path)
            removed.append(folder.base_name)
    return removed
