"""File-level access to the landing zone and artefacts (local paths, ``s3a://``, ``s3://``).

Spark reads and writes tables itself; this is for whole files written by executors (the data
generator) or small metadata files, through ``pyarrow.fs`` so it works the same on S3 and disk.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from pyarrow import fs as pafs

from decisionlake.config import StorageConfig


def filesystem_for(uri: str, storage: StorageConfig) -> tuple[pafs.FileSystem, str]:
    """Return a filesystem and the path inside it for ``uri``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a", "s3n"):
        kwargs: dict[str, object] = {"region": storage.region}
        if storage.s3_endpoint:
            endpoint = urlparse(storage.s3_endpoint)
            kwargs.update(
                endpoint_override=endpoint.netloc,
                scheme=endpoint.scheme or "http",
                access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
                secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                force_virtual_addressing=False,
            )
        return pafs.S3FileSystem(**kwargs), f"{parsed.netloc}{parsed.path}"
    if parsed.scheme in ("", "file"):
        return pafs.LocalFileSystem(), os.path.abspath(parsed.path if parsed.scheme else uri)
    raise ValueError(f"unsupported URI scheme in {uri!r}")


def write_bytes(uri: str, payload: bytes, storage: StorageConfig) -> None:
    """Write one whole file, creating parent folders where the store has them."""
    filesystem, path = filesystem_for(uri, storage)
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    with filesystem.open_output_stream(path, compression=None) as out:
        out.write(payload)


def read_bytes(uri: str, storage: StorageConfig) -> bytes:
    """Read one whole (small) file."""
    filesystem, path = filesystem_for(uri, storage)
    with filesystem.open_input_stream(path, compression=None) as handle:
        return handle.read()


def delete_prefix(uri: str, storage: StorageConfig) -> None:
    """Remove a folder (prefix) and everything under it, if it exists."""
    filesystem, path = filesystem_for(uri, storage)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        filesystem.delete_dir(path)
    elif info.type == pafs.FileType.File:
        filesystem.delete_file(path)
