"""The line formats a source can be delivered in, as pure column rules: JSON lines and
delimited text (with or without a header line).

A source's ``validate`` parses its lines with one of these and applies the format's rules
first (size, encoding, syntax), then its own (fields, types, time). The first rule a line
breaks is its quarantine reason (:func:`first_failing`); a header line of a delimited file is
marked :data:`HEADER_LINE`, which the ingest runner counts apart (neither accepted nor
quarantined).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.io.ingest import HEADER_LINE

__all__ = [
    "HEADER_LINE",
    "LONE_SURROGATE",
    "delimited_line_rules",
    "first_failing",
    "line_rules",
    "parse_delimited_lines",
    "parse_json_lines",
]


def line_rules(
    raw: Column, parsed: Column, corrupt: str, *, max_line_bytes: int
) -> list[tuple[Column, str]]:
    """Rules every JSON-lines source applies first: size, encoding, emptiness, JSON syntax,
    then what a JSON parser would otherwise change silently: a key given twice (the last one
    would win) and a lone UTF-16 surrogate escape (it would become ``?``)."""
    keys = F.json_object_keys(raw)
    return [
        (F.octet_length(raw) > max_line_bytes, "OVERSIZED_LINE"),
        (~F.is_valid_utf8(raw), "INVALID_UTF8"),
        (raw.isNull() | (F.trim(raw) == ""), "EMPTY_LINE"),
        (
            parsed.isNull() | parsed[corrupt].isNotNull() | ~F.trim(raw).startswith("{"),
            "MALFORMED_JSON",
        ),
        (has_repeats(keys), "DUPLICATE_KEY"),
        # The substring test first: the regular expression (lookarounds) costs seconds per
        # million lines, and only a line with a \u escape can match it.
        (raw.contains("\\u") & raw.rlike(LONE_SURROGATE), "LONE_SURROGATE"),
    ]


def has_repeats(values: Column) -> Column:
    """Whether an array holds some value twice, with ``values`` evaluated once.

    ``size(v) != size(array_distinct(v))`` would evaluate ``v`` (here a JSON parse) twice as a
    later CASE WHEN condition: the lambda's argument is evaluated once and read twice.
    """
    return F.transform(F.array(values), lambda v: F.size(v) != F.size(F.array_distinct(v)))[0]


# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
LONE_SURROGATE = (
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def first_failing(rules: list[tuple[Column, str]]) -> Column:
    """The code of the first rule whose condition holds, else NULL."""
    reason: Column = F.lit(None).cast("string")
    for condition, code in reversed(rules):
        reason = F.when(condition, F.lit(code)).otherwise(reason)
    return reason


def parse_json_lines(raw: DataFrame, schema: T.StructType, corrupt: str) -> DataFrame:
    """Add ``_p``: the line parsed with ``schema`` (NULL for invalid UTF-8, never an error)."""
    parsed = F.from_json(F.col("value"), schema, {"columnNameOfCorruptRecord": corrupt})
    return raw.withColumn("_p", F.when(F.is_valid_utf8("value"), parsed))


def parse_delimited_lines(
    raw: DataFrame, columns: Sequence[str], *, sep: str = ",", corrupt: str = "_corrupt_record"
) -> DataFrame:
    """Add ``_p``: the line split into ``columns`` as strings (a line with another number of
    fields keeps itself in ``_p.<corrupt>``; NULL for invalid UTF-8), and ``_header``: whether
    the line is a header, its fields being the column names (trimmed, any case). Quoted fields
    follow RFC 4180; a value never spans lines (the reader splits at LF first)."""
    schema = ", ".join(f"`{c}` STRING" for c in (*columns, corrupt))
    options = {"sep": sep, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": corrupt}
    parsed = F.from_csv(F.col("value"), schema, options)
    is_header = F.lit(True)
    for c in columns:
        is_header = is_header & (F.lower(F.trim(parsed[c])) == c.lower())
    return raw.withColumn("_p", F.when(F.is_valid_utf8("value"), parsed)).withColumn(
        "_header", F.coalesce(is_header & parsed[corrupt].isNull(), F.lit(False))
    )


def delimited_line_rules(
    raw: Column, parsed: Column, corrupt: str, *, max_line_bytes: int
) -> list[tuple[Column, str]]:
    """Rules every delimited-text source applies first: size, encoding, emptiness, then the
    field count (``WRONG_FIELD_COUNT``). A header line (``_header``) passes as
    :data:`HEADER_LINE` before any of them."""
    return [
        (F.col("_header"), HEADER_LINE),
        (F.octet_length(raw) > max_line_bytes, "OVERSIZED_LINE"),
        (~F.is_valid_utf8(raw), "INVALID_UTF8"),
        (raw.isNull() | (F.trim(raw) == ""), "EMPTY_LINE"),
        (parsed.isNull() | parsed[corrupt].isNotNull(), "WRONG_FIELD_COUNT"),
    ]
