"""PII redaction with typed placeholders and per-type counts (built-in regular expressions).

Applied in order, each on the output of the previous one, so a value is counted once:
links with personal tokens, emails, SSN-like numbers, phone numbers (US and international),
account-like numbers, then the names of the people the CRM knows for this note.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "URL",
        r"https?://[^\s<>\"]*[?&](?:token|key|sig|signature|session|sid|auth|code|user|uid|email)=[^\s<>\"]*",
    ),
    ("EMAIL", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    ("SSN", r"\b\d{3}-\d{2}-\d{4}\b"),
    (
        "PHONE",
        r"(?:\+1[-. ]?)?\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b"
        r"|\+\d{1,3}(?:[ -]?\d{1,4}){2,5}\b",
    ),
    # 8-19 digits in one run, or grouped by single spaces or dashes in three to five groups
    # (4512-8890-30, 3782 822463 10005, card 4111 1111 1111 1111), never part of one; not two
    # groups (a range such as 1000-2000, a citation such as 15 U.S.C. 6801-6805), not a date
    # (2026-11-24, 11-24-2026) and not a list of years (2018 2019 2020).
    (
        "ACCOUNT",
        r"\b(?!\d{4}-\d{1,2}-\d{1,2}(?![ -]?\d))(?!\d{1,2}-\d{1,2}-\d{2,4}(?![ -]?\d))"
        r"(?!(?:(?:19|20)\d\d[ -]){2,}(?:19|20)\d\d\b)"
        r"(?=(?:\d[ -]?){7,18}\d\b)"
        r"(?:\d{8,19}|\d{2,6}(?:[ -]\d{2,6}){2,4})\b",
    ),
)


def _name_pattern(first_name: Column, last_name: Column) -> Column:
    """``(?i)\\b(First Last|First|Last)\\b`` from the known parts (literal-quoted), or NULL."""

    def quoted(c: Column) -> Column:
        return F.when(F.length(F.trim(c)) > 1, F.concat(F.lit("\\Q"), F.trim(c), F.lit("\\E")))

    full = F.when(
        first_name.isNotNull() & last_name.isNotNull(),
        quoted(F.concat_ws(" ", F.trim(first_name), F.trim(last_name))),
    )
    alternatives = F.concat_ws("|", full, quoted(first_name), quoted(last_name))
    return F.when(alternatives != "", F.concat(F.lit("(?i)\\b("), alternatives, F.lit(")\\b")))


def with_redacted(
    df: DataFrame,
    *,
    text: str,
    first_name: str,
    last_name: str,
    out_text: str,
    out_counts: str,
) -> DataFrame:
    """Add ``out_text`` (redacted) and ``out_counts`` (placeholder type -> count).

    Each step is its own column so Spark evaluates every intermediate text once.
    """
    steps = [(kind, F.lit(pattern)) for kind, pattern in PATTERNS]
    steps.append(("NAME", _name_pattern(F.col(first_name), F.col(last_name))))
    current = F.coalesce(F.col(text), F.lit(""))
    staged = df.withColumn("_redact_0", current)
    for n, (kind, pattern) in enumerate(steps):
        previous = F.col(f"_redact_{n}")
        hits = F.coalesce(F.size(F.regexp_extract_all(previous, pattern, 0)), F.lit(0))
        replaced = F.when(
            pattern.isNotNull(), F.regexp_replace(previous, pattern, F.lit(f"<{kind}>"))
        )
        staged = staged.withColumn(f"_count_{kind}", hits.cast("int")).withColumn(
            f"_redact_{n + 1}", F.coalesce(replaced, previous)
        )
    kinds = [kind for kind, _ in steps]
    return staged.withColumns(
        {
            out_text: F.col(f"_redact_{len(steps)}"),
            out_counts: F.map_from_arrays(
                F.array(*[F.lit(k) for k in kinds]), F.array(*[F.col(f"_count_{k}") for k in kinds])
            ),
        }
    ).drop(*[f"_redact_{n}" for n in range(len(steps) + 1)], *[f"_count_{k}" for k in kinds])
