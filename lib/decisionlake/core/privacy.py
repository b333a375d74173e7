"""Pseudonymisation: keyed HMAC-SHA256 tokens, computed with Spark's built-in functions.

The key lives in Secrets Manager (``services.pseudonymisation_secret_id``; moto locally; fetched
by ``core.aws.pseudonymisation_key``: this module is pure), so
the same key gives the same token in every run and joins across tables still work, while a
token cannot be recomputed from an e-mail address without the key. Raw identifiers stay in
the restricted bronze tables.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_BLOCK = 64  # SHA-256 block size in bytes


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
