"""Stage a DataFrame for COPY: Parquet written by the executors, plus a COPY manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyarrow.fs import FileSelector, FileType
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.config import StorageConfig
from decisionlake.storage import delete_prefix, filesystem_for, write_bytes
from decisionlake.warehouse.ddl import is_nested


@dataclass(frozen=True)
class StagedData:
    """Where the staged files are and what they hold."""

    prefix: str
    manifest: str
    files: list[tuple[str, int]]
    columns: list[str]

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
    files: int,
) -> StagedData:
    """Write ``df`` as ``files`` Parquet files under ``prefix`` and a manifest beside them.

    The rows go from the executors to storage directly; the driver only lists the files.
    """
    data_uri = f"{prefix.rstrip('/')}/data"
    shaped = for_copy(df)
    # Fewer files than partitions: merge partitions without a shuffle.
    if files < shaped.rdd.getNumPartitions():
        shaped = shaped.coalesce(max(files, 1))
    else:
        shaped = shaped.repartition(files)
    shaped.write.mode("overwrite").parquet(data_uri)
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
    return StagedData(prefix, manifest_uri, staged, df.columns)


def clean(staged: StagedData, storage: StorageConfig) -> None:
    """Remove the staged files and manifest."""
    delete_prefix(staged.prefix, storage)
