"""Cross-checks with tools independent of Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from decisionlake.config import StorageConfig

_READER = """
import json, sys
from deltalake import DeltaTable
uri, options = sys.argv[1], json.loads(sys.argv[2])
table = DeltaTable(uri, storage_options=options or None)
print(json.dumps({"rows": table.to_pyarrow_dataset().count_rows(), "version": table.version()}))
sys.stdout.flush()
"""


def delta_rs_row_count(uri: str, storage: StorageConfig) -> dict[str, int]:
    """Open a Delta table with delta-rs (the ``deltalake`` package) and count its rows.

    Runs in a child process so the Rust library and the JVM never share one.
    """
    options: dict[str, str] = {}
    if uri.startswith(("s3a://", "s3://")):
        uri = "s3://" + uri.split("://", 1)[1]
        options = {
            "AWS_REGION": storage.region,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        }
        if storage.s3_endpoint:
            options.update({"AWS_ENDPOINT_URL": storage.s3_endpoint, "AWS_ALLOW_HTTP": "true"})
    out = subprocess.run(
        [sys.executable, "-c", _READER, uri, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"deltalake could not read {uri}: {out.stderr.strip()[-500:]}")
    return json.loads(lines[-1])
