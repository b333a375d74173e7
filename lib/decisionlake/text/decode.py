"""Bytes -> text with the encoding detected, using built-in functions only.

UTF-8 (with or without BOM) is decoded as such; bytes that are not valid UTF-8 are read as
ISO-8859-1 (Latin-1) unless they also hold valid UTF-8 multi-byte sequences, in which case the
document is UTF-8 with a few broken bytes, repaired with U+FFFD.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

_BOM = bytes.fromhex("efbbbf")
# Latin-1 view of a UTF-8 lead byte followed by a continuation byte.
_UTF8_MULTIBYTE = "[\u00c2-\u00f4][\u0080-\u00bf]"


def with_decoded_text(
    df: DataFrame, *, content: str, text: str = "text", encoding: str = "encoding"
) -> DataFrame:
    """Add ``text`` and ``encoding`` decoded from the bytes in ``content``.

    Built step by step as columns so Spark computes each intermediate value once.
    """
    raw = F.col(content)
    has_bom = F.substring(raw, 1, 3) == F.lit(_BOM)
    staged = df.withColumn(
        "_payload", F.when(has_bom, F.expr(f"substring(`{content}`, 4)")).otherwise(raw)
    ).withColumn("_bom", has_bom)
    staged = staged.withColumn("_utf8", F.col("_payload").cast("string")).withColumn(
        "_latin1", F.decode(F.col("_payload"), "ISO-8859-1")
    )
    staged = staged.withColumn("_valid", F.is_valid_utf8("_utf8")).withColumn(
        "_mixed", F.col("_latin1").rlike(_UTF8_MULTIBYTE)
    )
    return staged.withColumns(
        {
            encoding: F.when(F.col("_payload").isNull(), None)
            .when(F.col("_bom") & F.col("_valid"), "utf-8-bom")
            .when(F.col("_valid"), "utf-8")
            .when(F.col("_mixed"), "utf-8-repaired")
            .otherwise("iso-8859-1"),
            text: F.when(F.col("_valid"), F.col("_utf8"))
            .when(F.col("_mixed"), F.make_valid_utf8("_utf8"))
            .otherwise(F.col("_latin1")),
        }
    ).drop("_payload", "_bom", "_utf8", "_latin1", "_valid", "_mixed")
