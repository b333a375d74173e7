"""Pseudonymisation: keyed HMAC-SHA256 tokens, computed with Spark's built-in functions.

The key lives in Secrets Manager (``services.pseudonymisation_secret_id``; moto locally), so
the same key gives the same token in every run and joins across tables still work, while a
token cannot be recomputed from an e-mail address without the key. Raw identifiers stay in
the restricted bronze tables.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from decisionlake.config import AppConfig

_BLOCK = 64  # SHA-256 block size in bytes


def pseudonymisation_key(cfg: AppConfig) -> bytes:
    """The HMAC key from Secrets Manager (``{"key_b64": ...}``)."""
    return _fetch(cfg.services.pseudonymisation_secret_id, cfg.services.aws_endpoint,
                  cfg.storage.region)  # fmt: skip


@lru_cache(maxsize=4)
def _fetch(secret_id: str, endpoint: str, region: str) -> bytes:
    import boto3

    kwargs = {"region_name": region}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    client = boto3.client("secretsmanager", **kwargs)
    try:
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except client.exceptions.ResourceNotFoundException:
        raise RuntimeError(
            f"pseudonymisation key {secret_id!r} not found in Secrets Manager "
            "(locally: `decisionlake services up` provisions it)"
        ) from None
    key = base64.b64decode(json.loads(value)["key_b64"])
    if len(key) < 32:
        raise RuntimeError(f"pseudonymisation key {secret_id!r} is shorter than 32 bytes")
    return key


def hmac_sha256(message: Column, key: bytes) -> Column:
    """Hex HMAC-SHA256 of a string column (RFC 2104), NULL for NULL.

    The padded keys are constants, so the whole construction is two ``sha2`` calls.
    """
    if len(key) > _BLOCK:
        import hashlib

        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key)
    outer_pad = bytes(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), message.cast("binary")), 256))
    return F.when(message.isNotNull(), F.sha2(F.concat(F.lit(outer_pad), inner), 256))
